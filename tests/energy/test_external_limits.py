"""External limits ([[limits]]) and §14a: a control box's contact read from a real pymodbus
server and from a GPIO value file, applied by a real load controller, logged in a real database,
and held across a restart of a real gateway on the same database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edgegw.config import Config, parse_config
from edgegw.daemon import Gateway
from edgegw.energy import para14a
from edgegw.energy.controller import LoadController
from edgegw.energy.external import ExternalLimits
from edgegw.energy.external_sources import ExternalLimitService, parse_payload
from edgegw.hardware_catalogue import HardwareCatalogue
from edgegw.sim.meter import SimMeter
from edgegw.store.db import Database
from edgegw.store.limitlog import LimitLog, activations, activations_csv
from edgegw.tasks import TaskOwner

REGISTER = 100
# three three-phase chargers under the circuit: 10.5 kW (15.3 A, and 0.2 A for rounding)
STEUVE_A = para14a.phase_limits_a(3, [(0, 1, 2)] * 3)[0]


@pytest.fixture(autouse=True)
def _quiet_pymodbus() -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def _config(limit: dict[str, Any], *, port: int = 1, **extra: Any) -> Config:
    return parse_config(
        {
            "site": {"limit_a": 100, "margin_a": 2},
            "buses": {
                "box": {"transport": "tcp", "host": "127.0.0.1", "port": port, "timeout": 0.5}
            },
            "meters": [{"name": "grid", "bus": "box", "profile": "eastron-sdm630", "unit_id": 9}],
            "circuits": [{"name": "steuve", "limit_a": 63}],
            "chargers": [
                {"id": f"CP{i}", "circuit": "steuve", "max_current_a": 16} for i in range(3)
            ],
            "limits": [limit],
            **extra,
        }
    )


def _modbus_limit() -> dict[str, Any]:
    return {
        "name": "dso",
        "source": "modbus",
        "circuit": "steuve",
        "para14a": True,
        "bus": "box",
        "address": REGISTER,
        "active_value": 1,
        "poll_interval": 0.05,
    }


def _circuit_limit(controller: LoadController) -> tuple[float, float, float]:
    (circuit,) = controller.state().circuits
    return circuit.limit_a


def _dimmed_to(controller: LoadController, amps: float) -> bool:
    """The last round left the chargers under the circuit exactly ``amps`` per phase: §14a caps
    the chargers, so the round's limit is the grant plus the circuit's margin and its board's
    other load (none here: no board meter)."""
    (circuit,) = controller.state().circuits
    if circuit.used_a is None:
        return False  # no round yet
    other = circuit.other_a or (0.0, 0.0, 0.0)
    return all(
        abs(circuit.limit_a[p] - circuit.margin_a - other[p] - amps) < 1e-9 for p in range(3)
    )


class Rig:
    """A load controller, the external limits and their readers, on a real database."""

    def __init__(self, config: Config, db: Database) -> None:
        models = HardwareCatalogue.for_config(config).charger_models()

        async def no_calls(
            charger_id: str, action: str, payload: dict[str, Any], /, *, version: str = ""
        ) -> dict[str, Any]:
            raise AssertionError("no charger is connected")

        self.controller = LoadController(config, models, no_calls, lambda: None)
        self.log = LimitLog(db)
        self.limits = ExternalLimits(config, self.controller, self.log)
        self.service: ExternalLimitService | None = None
        self.config = config

    async def start(self, buses: dict[str, Any] | None = None) -> None:
        self.controller.start()
        await self.limits.restore()
        self.service = ExternalLimitService(self.config, self.limits, buses or {})
        self.service.start()

    async def close(self) -> None:
        if self.service is not None:
            await self.service.close()
        await self.controller.close()

    async def until_circuit(self, amps: float) -> None:
        await self.controller.wait_until(lambda: _circuit_limit(self.controller)[0] == amps, 10)

    async def until_dimmed(self, amps: float) -> None:
        await self.controller.wait_until(lambda: _dimmed_to(self.controller, amps), 10)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "gw.db")
    yield database
    await database.close()


async def test_a_modbus_contact_dims_the_circuit_for_para14a_and_logs_it(db: Database) -> None:
    box = SimMeter("eastron-sdm630", unit_id=1, live=False, image={3: {REGISTER: 0}})
    await box.start()
    try:
        config = _config(_modbus_limit(), port=box.port)
        rig = Rig(config, db)
        await rig.start()
        try:
            state = rig.limits.states["dso"]
            await rig.controller.wait_until(lambda: state.read, 10)
            assert _circuit_limit(rig.controller) == (63.0, 63.0, 63.0)
            assert not state.active

            box.image()[3][REGISTER] = 1  # the grid operator's box closes its contact
            await rig.until_dimmed(STEUVE_A)
            assert _circuit_limit(rig.controller) == (STEUVE_A + 2.0,) * 3  # + the 2 A margin
            await rig.controller.wait_until(lambda: state.activation_id is not None, 10)
            (row,) = await activations(db.conn, para14a_only=True)
            assert row.ended_at is None
            assert row.node == "steuve"
            assert row.chargers == 3
            assert row.granted_kw is not None and 10.5 <= row.granted_kw <= 10.5 + 0.3

            await box.stop()  # the box cannot be read: the dimming holds
            await rig.controller.wait_until(lambda: state.last_error is not None, 10)
            assert rig.limits.states["dso"].active  # (not narrowed by the assert above)
            assert _dimmed_to(rig.controller, STEUVE_A)

            box.image()[3][REGISTER] = 0
            await box.start()
            await rig.until_circuit(63.0)
            await rig.controller.wait_until(lambda: state.activation_id is None, 10)
            (row,) = await activations(db.conn)
            assert row.ended_at is not None and row.ended_at >= row.started_at
            csv_text = activations_csv([row])
            assert csv_text.splitlines()[0].startswith("source,node,started_at,ended_at")
            assert csv_text.splitlines()[1].startswith("dso,steuve,")
        finally:
            await rig.close()
    finally:
        await box.stop()


async def test_a_gpio_value_file_lowers_the_site_and_bad_content_holds(
    db: Database, tmp_path: Path
) -> None:
    value = tmp_path / "value"
    value.write_text("0\n")
    config = _config(
        {
            "name": "relay",
            "source": "gpio",
            "path": str(value),
            "limit_a": 40,
            "poll_interval": 0.05,
        }
    )
    rig = Rig(config, db)
    await rig.start()
    try:
        state = rig.limits.states["relay"]
        await rig.controller.wait_until(lambda: state.read, 10)
        assert rig.controller.state().limit_a == (100.0, 100.0, 100.0)
        value.write_text("1\n")
        await rig.controller.wait_until(lambda: rig.controller.state().limit_a[0] == 40.0, 10)
        value.write_text("garbage")
        await rig.controller.wait_until(lambda: state.last_error is not None, 10)
        assert "not 0 or 1" in (state.last_error or "")
        assert rig.controller.state().limit_a == (40.0, 40.0, 40.0)
        value.unlink()  # no file: still held
        await asyncio.sleep(0.2)
        assert rig.controller.state().limit_a == (40.0, 40.0, 40.0)
        value.write_text("0")
        await rig.controller.wait_until(lambda: rig.controller.state().limit_a[0] == 100.0, 10)
        await rig.controller.wait_until(lambda: state.activation_id is None, 10)
        (row,) = await activations(db.conn)
        assert not row.para14a and row.ended_at is not None and row.granted_kw is None
    finally:
        await rig.close()


async def test_active_low_inverts_the_value(db: Database, tmp_path: Path) -> None:
    value = tmp_path / "value"
    value.write_text("0")
    config = _config(
        {
            "name": "relay",
            "source": "gpio",
            "path": str(value),
            "active_low": True,
            "limit_a": 40,
            "poll_interval": 0.05,
        }
    )
    rig = Rig(config, db)
    await rig.start()
    try:
        await rig.controller.wait_until(lambda: rig.controller.state().limit_a[0] == 40.0, 10)
    finally:
        await rig.close()


async def _running(config: Config, tasks: TaskOwner) -> tuple[Gateway, asyncio.Task[None]]:
    gateway = Gateway(config)
    run = tasks.spawn(gateway.run(install_signal_handlers=False), "gateway")
    started = tasks.spawn(gateway.started.wait(), "started")
    await asyncio.wait({run, started}, return_when=asyncio.FIRST_COMPLETED)
    if run.done():
        run.result()
    return gateway, run


async def test_para14a_holds_across_a_restart_before_its_signal_is_read(
    meter: SimMeter, tmp_path: Path
) -> None:
    value = tmp_path / "value"
    value.write_text("1")
    config = parse_config(
        {
            "server": {"host": "127.0.0.1", "port": 0},
            "store": {"path": str(tmp_path / "shared.db")},
            "control": {"socket": str(tmp_path / "gw.sock"), "group": None},
            "auth": {"push_local_list": False},
            "site": {"limit_a": 100, "margin_a": 2},
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
            "meters": [{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.2}],
            "circuits": [{"name": "steuve", "limit_a": 63}],
            "chargers": [{"id": f"CP{i}", "circuit": "steuve"} for i in range(3)],
            "limits": [
                {
                    "name": "dso",
                    "source": "gpio",
                    "path": str(value),
                    "circuit": "steuve",
                    "para14a": True,
                    "poll_interval": 0.05,
                }
            ],
        }
    )
    tasks = TaskOwner("test")
    try:
        first, run = await _running(config, tasks)
        assert first.controller is not None and first.outside_limits is not None
        controller = first.controller
        await controller.wait_until(lambda: _dimmed_to(controller, STEUVE_A))
        state = first.outside_limits.external.states["dso"]
        await controller.wait_until(lambda: state.activation_id is not None)
        first.shutdown()
        await run  # the first daemon has stopped, the signal still active

        value.unlink()  # the second daemon cannot read the signal: the activation holds anyway
        second, run = await _running(config, tasks)
        assert second.controller is not None and second.outside_limits is not None
        controller = second.controller
        again = second.outside_limits.external.states["dso"]
        assert again.restored and again.active and not again.read
        # In force at once, before any read of the signal has completed: the round that ran
        # left the chargers the grant, or (no round yet) the circuit's limit is lowered to it.
        (circuit,) = controller.state().circuits
        assert _dimmed_to(controller, STEUVE_A) or (
            circuit.used_a is None and circuit.limit_a == (STEUVE_A,) * 3
        )
        await controller.wait_until(lambda: again.last_error is not None)
        assert _dimmed_to(controller, STEUVE_A)
        assert again.activation_id == state.activation_id  # the same activation goes on

        value.write_text("0")  # released: the same activation ends
        await controller.wait_until(lambda: _circuit_limit(controller)[0] == 63.0)
        await controller.wait_until(lambda: again.activation_id is None)
        assert second.store is not None
        (row,) = await activations(second.store.db.conn, para14a_only=True)
        assert row.ended_at is not None
        second.shutdown()
        await run
    finally:
        await tasks.close("test over")


def test_mqtt_payloads() -> None:
    assert parse_payload(b"1") is True
    assert parse_payload(b" ON ") is True
    assert parse_payload(b"false") is False
    assert parse_payload(b'{"active": true}') is True
    assert parse_payload(b'{"active": 1}') is None
    assert parse_payload(b"") is None
    assert parse_payload(b"\xff") is None


@pytest.mark.parametrize(
    ("limit", "problem"),
    [
        ({"name": "x", "source": "gpio", "path": "/x"}, "either limit_a or para14a"),
        ({"name": "x", "source": "gpio", "path": "/x", "para14a": True}, "name the circuit"),
        ({"name": "x", "source": "modbus", "limit_a": 10, "bus": "box"}, "needs address"),
        ({"name": "x", "source": "mqtt", "limit_a": 10, "topic": "a/#"}, "wildcards"),
        ({"name": "x", "source": "mqtt", "limit_a": 10, "topic": "a/b"}, "needs the [mqtt]"),
        (
            {"name": "x", "source": "gpio", "path": "/x", "limit_a": 10, "circuit": "nope"},
            "no circuit named 'nope'",
        ),
        (
            {"name": "x", "source": "modbus", "limit_a": 1, "bus": "other", "address": 1},
            "no [buses.other]",
        ),
    ],
)
def test_config_refuses_what_cannot_work(limit: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        _config(limit)


async def test_a_para14a_grant_follows_the_chargers_a_reload_puts_under_its_circuit(
    db: Database, tmp_path: Path
) -> None:
    value = tmp_path / "value"
    value.write_text("1")
    limit = {
        "name": "dso",
        "source": "gpio",
        "path": str(value),
        "circuit": "steuve",
        "para14a": True,
        "poll_interval": 0.05,
    }
    config = _config(limit)
    rig = Rig(config, db)
    await rig.start()
    try:
        state = rig.limits.states["dso"]
        await rig.until_dimmed(STEUVE_A)
        await rig.controller.wait_until(lambda: state.activation_id is not None, 10)
        first = state.activation_id
        data = config.model_dump(mode="json", exclude_none=True)
        data["chargers"].append({"id": "CP3", "circuit": "steuve", "max_current_a": 16})
        reloaded = parse_config(data)
        rig.controller.use_config(reloaded)
        await rig.limits.use_config(reloaded)
        four = para14a.phase_limits_a(4, [(0, 1, 2)] * 4)[0]
        await rig.until_dimmed(four)
        rows = await activations(db.conn)
        assert [(r.id == first, r.chargers, r.ended_at is None) for r in rows] == [
            (True, 3, False),
            (False, 4, True),
        ]
        assert rows[1].granted_kw is not None and 13.02 <= rows[1].granted_kw <= 13.02 + 0.3
    finally:
        await rig.close()


async def test_restore_puts_back_the_open_activation_and_closes_the_others(
    db: Database, tmp_path: Path
) -> None:
    log = LimitLog(db)

    async def opened(source: str, at: float) -> int:
        return await log.started(
            source,
            para14a=True,
            node="steuve",
            at=at,
            limit_a=(1.0,) * 3,
            granted_kw=1.0,
            chargers=1,
        )

    gone = await opened("old-box", 1000.0)  # a source no longer configured
    older = await opened("dso", 2000.0)  # left open by an end that was never written
    latest = await opened("dso", 3000.0)
    limit = {"name": "dso", "source": "gpio", "path": str(tmp_path / "none"), "limit_a": 30}
    rig = Rig(_config(limit), db)
    await rig.limits.restore()  # nothing read yet: no reader runs in this test
    state = rig.limits.states["dso"]
    assert (state.active, state.restored, state.activation_id) == (True, True, latest)
    assert rig.controller.state().limit_a == (30.0, 30.0, 30.0)
    assert [a.id for a in await log.open_activations()] == [latest]
    closed = {a.id for a in await activations(db.conn) if a.ended_at is not None}
    assert closed == {gone, older}
    await rig.close()
