"""The live picture of the site on the control socket: ``live.snapshot`` and pushed updates.

``live.snapshot`` answers with :meth:`~edgegw.live.state.LiveState.snapshot` as JSON (the
site: limit, meter, per-phase current, cloud link, sync backlog; per charger: status, current,
energy of the running session, whose card). ``live.events`` lists the latest live events
(sessions started and stopped, cards refused, meter lost ...), newest first. Both are
read-only, open to the ``edgegw`` group.

So that the TUI's dashboard follows the site without polling, every change is also pushed to
subscribers: topic ``live`` carries the whole snapshot, ``live.event`` each live event.
Changes are coalesced: the live state may change many times a second (every MeterValues,
every meter sample), but a snapshot is built and sent at most once per ``min_interval``, and
only when someone subscribed. The observer callback only sets a timer, so the relay path
never waits on it. Events are sent with the next snapshot, in order, never dropped by the
coalescing (the control server bounds each client's queue).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

from edgegw.control.protocol import ControlError, ErrorCode, get_arg, topic_matches
from edgegw.control.server import ControlServer
from edgegw.live.changes import LiveChange, LiveEvent, Scope
from edgegw.live.state import LiveState

log = logging.getLogger(__name__)

SNAPSHOT_TOPIC: Final = "live"
EVENT_TOPIC: Final = "live.event"
MAX_PENDING_EVENTS: Final = 200
"""Events waiting for the next push; beyond, the oldest are dropped (a burst of hundreds in
half a second is a fault storm; ``live.events`` still lists them)."""


class LiveOps:
    """Registers ``live.snapshot`` and ``live.events`` and pushes changes to subscribers.

    ``live`` is the daemon's :class:`LiveState` (registered as a charger observer and started
    by the daemon); ``min_interval`` the shortest time between two pushed snapshots. Call
    :meth:`close` on the way out (it stops listening to the live state and cancels the pending
    push).
    """

    def __init__(self, live: LiveState, *, min_interval: float = 0.5) -> None:
        self._live = live
        self._min_interval = min_interval
        self._server: ControlServer | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_push = -math.inf
        self._dirty = False
        self._events: deque[LiveEvent] = deque(maxlen=MAX_PENDING_EVENTS)
        self.pushed = 0
        """Snapshots pushed (for tests and status displays)."""

    def register(self, server: ControlServer) -> None:
        server.register(
            "live.snapshot",
            self.snapshot,
            description="The site now: limit, meter, cloud link, sync backlog, each charger.",
        )
        server.register(
            "live.events",
            self.events,
            description="Latest live events (sessions, refused cards, meter), newest first "
            "(args: limit).",
        )
        self._server = server
        if self._unsubscribe is None:
            self._unsubscribe = self._live.on_change(self._changed)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._snapshot_json()

    async def events(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        limit = get_arg(args, "limit", int, 100)
        if not 1 <= limit <= 1000:
            raise ControlError(ErrorCode.BAD_ARGS, "limit must be between 1 and 1000")
        return [_json_safe(e.as_dict()) for e in reversed(self._live.events(limit))]

    # ------------------------------------------------------------ pushing

    def _changed(self, change: LiveChange) -> None:
        if change.scope is Scope.EVENT and change.event is not None:
            self._events.append(change.event)
        else:
            self._dirty = True
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # told outside the loop (a test driving LiveState by hand)
            return
        delay = max(0.0, self._last_push + self._min_interval - loop.time())
        self._timer = loop.call_later(delay, self._push)

    def _push(self) -> None:
        self._timer = None
        server = self._server
        if server is None:
            return
        self._last_push = asyncio.get_running_loop().time()
        events = list(self._events)
        self._events.clear()
        dirty, self._dirty = self._dirty, False
        try:
            if events and _subscribed(server, EVENT_TOPIC):
                for event in events:
                    server.publish(EVENT_TOPIC, _json_safe(event.as_dict()))
            if (dirty or events) and _subscribed(server, SNAPSHOT_TOPIC):
                server.publish(SNAPSHOT_TOPIC, self._snapshot_json())
                self.pushed += 1
        except (TypeError, ValueError) as exc:  # not JSON, or over the line limit: our bug
            log.error("live update not pushed: %s", exc)

    def _snapshot_json(self) -> dict[str, Any]:
        data: dict[str, Any] = _json_safe(self._live.snapshot().as_dict())
        return data


def _subscribed(server: ControlServer, topic: str) -> bool:
    return any(topic_matches(t, topic) for client in server.clients() for t in client.topics)


def _json_safe(value: Any) -> Any:
    """Non-finite floats as null: the protocol carries strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
