"""Commands that arrive over MQTT: read, carried out, answered on their result topic.

The publisher hands each incoming message to :class:`CommandInbox` (Home Assistant's
``online`` status aside, which it handles itself). A command is parsed
(:func:`~edgegw.telemetry.commands.parse_command`), run on a task of the publisher's (at most
``MAX_RUNNING_COMMANDS`` at once, each at most ``COMMAND_TIMEOUT``) and answered with a result
``{"ok", "command", "charger", "request_id", "at", "reason" | "detail"}``, which the publisher
sends when it next can (``results``, at most ``MAX_PENDING_RESULTS`` waiting, oldest
dropped). A retained command is never run: it would run again at every reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from edgegw.config import Config
from edgegw.tasks import TaskOwner
from edgegw.telemetry.commands import (
    CommandRefused,
    Controls,
    Parsed,
    execute,
    parse_command,
    request_id_of,
)
from edgegw.telemetry.settings import MqttConfig
from edgegw.telemetry.topics import CommandRoute

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
MAX_RUNNING_COMMANDS: Final = 4
MAX_PENDING_RESULTS: Final = 50
COMMAND_TIMEOUT: Final = 40.0


class CommandInbox:
    """Runs the commands of ``controls``; ``results`` holds the answers not yet sent, and
    ``wake`` is called when one is added."""

    def __init__(
        self,
        config: Config,
        mqtt: MqttConfig,
        controls: Controls,
        tasks: TaskOwner,
        *,
        known_charger: Callable[[str], bool],
        wake: Callable[[], None],
    ) -> None:
        self._config = config
        self._mqtt = mqtt
        self._controls = controls
        self._tasks = tasks
        self._known_charger = known_charger
        self._wake = wake
        self.results: deque[tuple[str, JsonDict]] = deque(maxlen=MAX_PENDING_RESULTS)
        self.running = 0

    def take(self, route: CommandRoute, result_topic: str, payload: bytes, retained: bool) -> None:
        """One command message: refused at once (answered), or started on a task."""
        if retained:
            self._answer(
                result_topic,
                route,
                request_id_of(payload),
                reason="retained commands are ignored: publish commands without the retain flag",
            )
            return
        if self.running >= MAX_RUNNING_COMMANDS:
            self._answer(
                result_topic,
                route,
                request_id_of(payload),
                reason=f"busy: {self.running} commands run",
            )
            return
        try:
            parsed = parse_command(
                route,
                payload,
                site=self._config.site,
                max_duration=self._mqtt.max_limit_duration,
                known_charger=self._known_charger,
            )
        except CommandRefused as exc:
            log.info("mqtt: refused %s: %s", result_topic, exc)
            self._answer(result_topic, route, request_id_of(payload), reason=str(exc))
            return
        self.running += 1
        self._tasks.spawn(self._run(parsed, route, result_topic), f"command:{route.name}")

    async def _run(self, parsed: Parsed, route: CommandRoute, result_topic: str) -> None:
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                detail = await execute(self._controls, parsed.command)
        except CommandRefused as exc:
            log.info("mqtt: command %s refused: %s", parsed.command, exc)
            self._answer(result_topic, route, parsed.request_id, reason=str(exc))
        except TimeoutError:
            self._answer(
                result_topic, route, parsed.request_id, reason="timed out; the outcome is unknown"
            )
        except Exception as exc:
            log.exception("mqtt: command %s failed", parsed.command)
            self._answer(result_topic, route, parsed.request_id, reason=f"internal error: {exc}")
        else:
            log.info("mqtt: command %s done: %s", parsed.command, detail)
            self._answer(result_topic, route, parsed.request_id, detail=detail)
        finally:
            self.running -= 1

    def _answer(
        self,
        topic: str,
        route: CommandRoute,
        request_id: str | None,
        *,
        reason: str | None = None,
        detail: str | None = None,
    ) -> None:
        result: JsonDict = {
            "ok": reason is None,
            "command": route.name,
            "charger": route.charger_id,
            "request_id": request_id,
            "at": round(time.time(), 3),
        }
        if reason is not None:
            result["reason"] = reason
        if detail is not None:
            result["detail"] = detail
        self.results.append((topic, result))
        self._wake()
