"""Canned daemon answers for the TUI's snapshot tests: a fixed site at a fixed time.

:class:`FakeBackend` answers ops from a table and reports itself connected at once, so the
screens render exactly the same text on every run (the clock is frozen at :data:`NOW`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

from edgegw.control.client import RemoteError
from edgegw.live.snapshot import (
    ChargerLive,
    CircuitLive,
    ConnectorLive,
    LiveSnapshot,
    MeterLive,
    Phases,
    SessionLive,
    SiteLive,
)
from edgegw.tui.link import LinkListener, LinkState, OpUnavailable

NOW = 1_767_261_600.0  # 2026-01-01 10:00:00 UTC
TZ = UTC

Answer = Any | Callable[[Mapping[str, Any]], Any]


def _charger(
    charger_id: str,
    label: str,
    status: str,
    *,
    connected: bool = True,
    current: float = 0.0,
    session: SessionLive | None = None,
    energy_wh: float | None = None,
    faults: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
    enabled: bool | None = True,
    version: str | None = "ocpp1.6",
    circuit: str | None = None,
) -> ChargerLive:
    phases: Phases | None = (current, current, current) if connected else None
    return ChargerLive(
        id=charger_id,
        label=label,
        connected=connected,
        status=status,
        enabled=enabled,
        cloud_link="online" if connected else "charger offline",
        vendor="edgegw-sim",
        model="SimCharger",
        firmware="sim-1.0",
        current_a=phases,
        power_w=current * 230 * 3 if connected else None,
        energy_wh=energy_wh,
        sessions_active=1 if session else 0,
        connectors=(
            ConnectorLive(
                connector_id=1,
                status=status if connected else None,
                error_code="NoError",
                info=None,
                vendor_error_code=None,
                status_at=NOW - 600,
                current_a=phases,
                power_w=None,
                limit_a=16.0 if session else None,
                session=session,
            ),
        ),
        faults=faults,
        flags=flags,
        last_seen=NOW - (5 if connected else 7200),
        connected_since=NOW - 8100 if connected else None,
        serial=None,
        ocpp_version=version if connected else None,
        circuit=circuit,
    )


def site_live(chargers: int = 4, connected: int = 3) -> SiteLive:
    return SiteLive(
        at=NOW,
        limit_a=(32.0, 32.0, 32.0),
        margin_a=2.0,
        mode="normal",
        current_a=(24.5, 18.0, 35.2),
        power_w=17800.0,
        energy_import_wh=1_234_000.0,
        meter=MeterLive(name="grid", health="ok", ok=True, age_s=1.0, last_error=None),
        ev_current_a=(16.0, 16.0, 16.0),
        ev_power_w=11040.0,
        cloud="degraded",
        cloud_online=False,
        links={"online": 2, "offline": 1},
        sync_queued=12,
        sync_parked=1,
        sync_oldest_age_s=420.0,
        chargers_total=chargers,
        chargers_connected=connected,
        sessions_active=1,
        allocated_a=(16.0, 16.0, 16.0),
        headroom_a=(5.5, 12.0, 0.0),
    )


def circuits() -> tuple[CircuitLive, ...]:
    """Two boards of the fixed site: level 1 (CP1, CP2) and level 2 below it (CP3)."""
    return (
        CircuitLive(
            name="level-1",
            parent=None,
            limit_a=(25.0, 25.0, 25.0),
            margin_a=2.0,
            allocated_a=(16.0, 16.0, 16.0),
            headroom_a=(7.0, 7.0, 7.0),
            load_a=(16.0, 16.0, 16.0),
            measured_a=(18.5, 17.0, 16.2),
            chargers=("CP1", "CP2"),
            meter="ok",
            fallback=False,
        ),
        CircuitLive(
            name="level-2",
            parent="level-1",
            limit_a=(16.0, 16.0, 16.0),
            margin_a=1.0,
            allocated_a=(0.0, 0.0, 0.0),
            headroom_a=(15.0, 15.0, 15.0),
            load_a=(0.0, 0.0, 0.0),
            measured_a=None,
            chargers=("CP3",),
            meter=None,
            fallback=False,
        ),
    )


def site_snapshot() -> dict[str, Any]:
    """The fixed site, as ``live.snapshot`` answers: built with the daemon's own snapshot
    types (``tests/tui/test_contract.py`` ties them to a real live state's)."""
    alice = SessionLive(
        transaction_id=17,
        id_tag="04A1B2C3",
        owner="Alice Martin",
        id_tag_status="Accepted",
        started_at=NOW - 3000,
        meter_start_wh=1000.0,
        energy_wh=4210.0,
    )
    chargers = (
        _charger(
            "CP1",
            "Bay 1",
            "Charging",
            current=16.0,
            session=alice,
            energy_wh=4210.0,
            circuit="level-1",
        ),
        _charger("CP2", "Bay 2", "Available", version="ocpp2.0.1", circuit="level-1"),
        _charger(
            "CP3",
            "Bay 3",
            "Faulted",
            faults=("connector 1: GroundFailure",),
            flags=("ignores_limit",),
            circuit="level-2",
        ),
        _charger("CP4", "Visitors", "Offline", connected=False, enabled=None),
    )
    return LiveSnapshot(site_live(), chargers, circuits()).as_dict()


def many_chargers(count: int) -> dict[str, Any]:
    """The fixed site of the snapshot tests with ``count`` online chargers, labelled by floor."""
    chargers = tuple(
        _charger(f"CP-{n:03d}", f"Level {n % 3} bay {n}", "Available") for n in range(1, count + 1)
    )
    return LiveSnapshot(site_live(count, count), chargers).as_dict()


def live_events() -> list[dict[str, Any]]:
    """Newest first, as ``live.events`` answers."""
    out = [
        {
            "event": "card_refused",
            "at": NOW - 60 * i - 30,
            "charger": "CP2",
            "connector": None,
            "id_tag": "DEADBEEF",
            "owner": None,
            "status": "Blocked",
            "during": "Authorize",
        }
        for i in range(3)
    ]
    out.append(
        {
            "event": "session_started",
            "at": NOW - 3000,
            "charger": "CP1",
            "connector": 1,
            "transaction_id": 17,
            "id_tag": "04A1B2C3",
            "owner": "Alice Martin",
            "id_tag_status": "Accepted",
            "meter_start_wh": 1000.0,
        }
    )
    return out


def stored_events() -> list[dict[str, Any]]:
    return [
        {
            "at": NOW - 90,
            "kind": "sync.parked",
            "charger": "CP1",
            "message": "MeterValues parked: cloud answered FormationViolation",
        },
        {
            "at": NOW - 7200,
            "kind": "action.Reset",
            "charger": "CP3",
            "message": "soft reset: Accepted",
        },
    ]


def cards() -> dict[str, Any]:
    rows = [
        ("04A1B2C3", "Alice Martin", "white fob", "Accepted", None, None),
        ("04D5E6F7A8B9C0", "Bob Janssens", "", "Accepted", "2026-12-31T00:00:00Z", ["CP1", "CP2"]),
        ("DEADBEEF", "Lost card (Carol)", "", "Blocked", None, None),
    ]
    return {
        "total": 3,
        "matched": 3,
        "offset": 0,
        "cards": [
            {
                "id": card_id,
                "kind": "uid",
                "owner": owner,
                "label": label,
                "status": status,
                "effective": status,
                "expiry": expiry,
                "chargers": chargers,
                "parent": None,
                "created_at": NOW - 86400,
                "updated_at": NOW - 86400,
            }
            for card_id, owner, label, status, expiry, chargers in rows
        ],
    }


def sessions() -> dict[str, Any]:
    def one(n: int, charger: str, card: str | None, owner: str | None, kwh: float | None) -> Any:
        started = NOW - 3600 * (n + 1)
        finished = kwh is not None
        return {
            "id": 100 - n,
            "charger": charger,
            "connector": 1,
            "transaction_id": 50 - n,
            "cloud_transaction_id": 50 - n,
            "mode": "relayed",
            "id_tag": card or "CAFE0001",
            "card": card,
            "owner": owner,
            "label": None,
            "state": "finished" if finished else "open",
            "started_ts": started,
            "stopped_ts": started + 5400 if finished else None,
            "duration_s": 5400.0 if finished else None,
            "energy_wh": None if kwh is None else int(kwh * 1000),
            "energy_kwh": kwh,
            "stop_reason": "Local" if finished else None,
        }

    return {
        "sessions": [
            one(0, "CP1", "04A1B2C3", "Alice Martin", None),
            one(1, "CP2", "04D5E6F7A8B9C0", "Bob Janssens", 12.5),
            one(2, "CP1", None, None, 3.25),
            one(30, "CP3", "04A1B2C3", "Alice Martin", 20.0),
        ],
        "next": None,
    }


def decisions() -> dict[str, Any]:
    rows = []
    for n in range(5):
        rows.append(
            {
                "id": 1000 + n,
                "at": NOW - 5 + n,
                "mode": "normal",
                "inputs": {
                    "grid_a": [24.5, 18.0, 35.2],
                    "sessions": [{"charger": "CP1", "connector": 1, "measured_a": [16, 16, 16]}],
                },
                "outputs": {
                    "budget_a": [14.0, 14.0, 14.0],
                    "used_a": [16.0, 16.0, 16.0],
                    "allocations": [
                        {"charger": "CP1", "connector": 1, "limit_a": 16.0, "reason": "fair"}
                    ],
                    "notes": ["L3 above limit: cutting"] if n == 4 else [],
                },
            }
        )
    return {"decisions": rows, "count": len(rows), "truncated": False}


def ops_listing(admin: bool = True) -> list[dict[str, Any]]:
    names = {
        "status": False,
        "sync.status": False,
        "sync.parked": False,
        "sync.retry": True,
        "events": False,
        "live.snapshot": False,
        "live.events": False,
        "cards.list": False,
        "cards.block": True,
        "cards.unblock": True,
        "cards.update": True,
        "cards.add": True,
        "cards.remove": True,
        "cards.learn": True,
        "sessions.list": False,
        "energy.decisions": False,
        "chargers.stop_session": True,
        "chargers.unlock": True,
        "chargers.reset": True,
        "chargers.availability": True,
    }
    return [
        {"op": name, "admin": is_admin, "allowed": admin or not is_admin, "description": ""}
        for name, is_admin in names.items()
    ]


def default_answers() -> dict[str, Answer]:
    def decisions_for(args: Mapping[str, Any]) -> Any:
        if "since" in args:  # the 24 h backfill: one round per half hour, the last 3 h
            since = float(args["since"])
            at = max(since, NOW - 3 * 3600)
            grid = 10.0 + (at % 7200) / 600
            return {
                "decisions": [
                    {
                        "id": int(at),
                        "at": at,
                        "mode": "normal",
                        "inputs": {"grid_a": [grid, grid, grid], "sessions": []},
                        "outputs": {},
                    }
                ]
            }
        return decisions()

    return {
        "status": {"version": "0.9.0", "uptime_s": 8100.0, "cloud": "wss://cloud", "chargers": []},
        "live.snapshot": site_snapshot(),
        "live.events": live_events(),
        "events": stored_events(),
        "cards.list": cards(),
        "sessions.list": sessions(),
        "energy.decisions": decisions_for,
    }


class FakeBackend:
    """A :class:`~edgegw.tui.link.Backend` answering from ``answers`` (op -> value or
    function of the args); ops not in ``ops`` are unknown to this "daemon"."""

    def __init__(
        self,
        answers: Mapping[str, Answer] | None = None,
        *,
        ops: list[dict[str, Any]] | None = None,
        up: bool = True,
        problem: str = "",
    ) -> None:
        self.answers = dict(default_answers() if answers is None else answers)
        listing = ops_listing() if ops is None else ops
        self.ops = {o["op"]: o for o in listing}
        self.up = up
        self._problem = problem
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @property
    def state(self) -> LinkState:
        return LinkState.UP if self.up else LinkState.DOWN

    @property
    def problem(self) -> str:
        return self._problem

    @property
    def where(self) -> str:
        return "/run/edgegw/control.sock"

    @property
    def admin(self) -> bool:
        return any(o["allowed"] for o in self.ops.values() if o["admin"])

    def has(self, op: str) -> bool:
        return op in self.ops or op in ("ping", "ops", "subscribe")

    def allowed(self, op: str) -> bool:
        return bool(self.ops.get(op, {"allowed": True})["allowed"])

    def retry_now(self) -> None:
        pass

    async def call(
        self, op: str, args: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        self.calls.append((op, dict(args or {})))
        if not self.has(op):
            raise OpUnavailable(f"{op!r} is not available in this daemon version")
        answer = self.answers.get(op)
        if answer is None:
            raise RemoteError("unavailable", f"no canned answer for {op}")
        return answer(args or {}) if callable(answer) else answer

    async def run(self, listener: LinkListener) -> None:
        listener.link_changed(self.state, self._problem)
        await asyncio.Event().wait()
