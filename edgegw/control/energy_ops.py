"""Control-socket operations on load capping: what the controller sees and decided, and why.

``energy.state`` answers "what is going on now": per phase the site limit, what the meter
measures, the non-EV load, the EV budget and what is allocated; per charger and session
the limit decided, the limit in force and what the car draws; and how each meter reads.
``energy.decisions`` answers "why did bay 7 charge at 6 A at 18:02?": the decision log's
rounds (inputs and outputs), oldest first. Both are read-only, open to the ``edgegw``
group.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from edgegw.control.protocol import MAX_LINE, ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer
from edgegw.store.decisions import Decision, DecisionLog

if TYPE_CHECKING:
    from edgegw.energy.controller import LoadController
    from edgegw.energy.meters import MeterService

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 10_000
_ANSWER_BUDGET: Final = MAX_LINE * 3 // 4
"""Bytes of decisions one answer may carry; the rest of the line is the envelope."""


class EnergyOps:
    """Registers ``energy.state`` and ``energy.decisions`` on a :class:`ControlServer`.

    ``controller`` is the load controller and ``decisions`` its decision log (None: load
    capping is not configured, or the log is not kept); ``meters`` the site's meters.
    """

    def __init__(
        self,
        controller: LoadController | None,
        meters: MeterService | None,
        decisions: DecisionLog | None = None,
    ) -> None:
        self._controller = controller
        self._meters = meters
        self._decisions = decisions

    def register(self, server: ControlServer) -> None:
        server.register(
            "energy.state",
            self.state,
            description="Load capping now: per phase limit, measured, allocated; per charger.",
        )
        server.register(
            "energy.decisions",
            self.decisions,
            description=(
                "Load-capping rounds, oldest first (args: since, until (Unix s), limit; "
                "without since: the newest rounds)."
            ),
        )

    async def state(self, args: dict[str, Any]) -> dict[str, Any]:
        controller = self._controller
        if controller is None:
            raise ControlError(
                ErrorCode.UNAVAILABLE, "load capping is not configured (no [site] section)"
            )
        state: dict[str, Any] = controller.state().as_dict()
        meters = self._meters
        state["meters"] = (
            []
            if meters is None
            else [
                {
                    "name": name,
                    "role": poller.config.role,
                    "profile": poller.profile.id,
                    "bus": poller.bus.name,
                    "health": poller.health.state.value,
                    "error_kind": poller.health.error_kind,
                    "last_error": poller.health.last_error,
                    "consecutive_failures": poller.health.consecutive_failures,
                }
                for name, poller in sorted(meters.pollers.items())
            ]
        )
        safe: dict[str, Any] = _json_safe(state)
        return safe

    async def decisions(self, args: dict[str, Any]) -> dict[str, Any]:
        log = self._decisions
        if log is None:
            raise ControlError(
                ErrorCode.UNAVAILABLE,
                # Said after "No decision log:" by the TUI: not repeated here.
                "load capping is not configured (no [site] section), so no round was decided",
            )
        limit = get_arg(args, "limit", int, DEFAULT_LIMIT)
        if not 1 <= limit <= MAX_LIMIT:
            raise ControlError(ErrorCode.BAD_ARGS, f"limit must be between 1 and {MAX_LIMIT}")
        since = _time_arg(args, "since")
        until = _time_arg(args, "until")
        if since is not None and until is not None and until <= since:
            raise ControlError(ErrorCode.BAD_ARGS, "until must be later than since")
        newest = since is None
        if newest:
            since = await log.newest_window_start(limit, until)
        rows = await log.decisions(since=since, until=until, limit=limit)
        if newest:
            rows = rows[-limit:]
        items, truncated = _fit([_decision(d) for d in rows], keep_newest=newest)
        answer: dict[str, Any] = {"decisions": items, "count": len(items), "truncated": truncated}
        if truncated and not newest:
            answer["next_since"] = rows[len(items)].at
        return answer


def _time_arg(args: Mapping[str, Any], name: str) -> float | None:
    value = get_arg(args, name, float, None)
    if value is not None and not math.isfinite(value):
        raise ControlError(ErrorCode.BAD_ARGS, f"{name} must be a finite Unix time")
    return value


def _decision(decision: Decision) -> dict[str, Any]:
    return {
        "id": decision.id,
        "at": decision.at,
        "mode": decision.mode,
        "inputs": decision.inputs,
        "outputs": decision.outputs,
    }


def _fit(items: list[dict[str, Any]], *, keep_newest: bool) -> tuple[list[dict[str, Any]], bool]:
    """As many items as fit in one answer line: the oldest first, or the newest ones."""
    sizes = [len(json.dumps(item, separators=(",", ":"), ensure_ascii=False)) + 1 for item in items]
    order = range(len(items) - 1, -1, -1) if keep_newest else range(len(items))
    total = 0
    kept = 0
    for index in order:
        total += sizes[index]
        if total > _ANSWER_BUDGET:
            break
        kept += 1
    if kept == len(items):
        return items, False
    return (items[len(items) - kept :] if keep_newest else items[:kept]), True


def _json_safe(value: Any) -> Any:
    """Tuples as lists, non-finite floats as null: the protocol carries strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
