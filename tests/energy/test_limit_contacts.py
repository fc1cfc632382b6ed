"""A control box's relay contact read as a Modbus coil (function 1) or discrete input
(function 2), from a real pymodbus server: the bus reads the bits, a ``[[limits]]`` entry follows
the contact, and a meter's reads stay registers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import ValidationError
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edgegw.config import BusConfig
from edgegw.energy.meterprofile import Register
from edgegw.energy.modbusbus import ModbusBus
from edgegw.energy.modbuserrors import MeterConfigError
from edgegw.energy.registers import BlockRead
from edgegw.store.db import Database
from tests.energy.test_external_limits import Rig, _config

UNIT = 3
COIL = 20
INPUT = 37


@pytest.fixture(autouse=True)
def _quiet_pymodbus() -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class ControlBox:
    """A grid operator's control box: 64 coils and 64 discrete inputs, no registers."""

    def __init__(self) -> None:
        bits = [SimData(0, count=64, values=False, datatype=DataType.BITS)]
        none = [SimData(0, datatype=DataType.INVALID)]
        device = SimDevice(UNIT, simdata=(bits, list(bits), none, list(none)))
        self.server = ModbusTcpServer([device], address=("127.0.0.1", 0))
        self.port = 0

    async def start(self) -> None:
        await self.server.serve_forever(background=True)
        self.port = int(cast(asyncio.Server, self.server.transport).sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await self.server.shutdown()  # type: ignore[no-untyped-call]

    async def switch_coil(self, on: bool) -> None:
        """Flip the relay's coil over Modbus (function 5), as another master would."""
        client = AsyncModbusTcpClient("127.0.0.1", port=self.port)
        await client.connect()
        try:
            response = await client.write_coil(COIL, on, device_id=UNIT)
            assert not response.isError()
        finally:
            client.close()

    async def set_input(self, on: bool) -> None:
        """The box's own input changes (a discrete input cannot be written over Modbus)."""
        assert await self.server.context.async_setValues(UNIT, 2, INPUT, [on]) is None


@pytest.fixture
async def box() -> AsyncIterator[ControlBox]:
    control = ControlBox()
    await control.start()
    yield control
    await control.stop()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "gw.db")
    yield database
    await database.close()


def _bus(port: int) -> ModbusBus:
    return ModbusBus(BusConfig(transport="tcp", host="127.0.0.1", port=port, timeout=0.5))


async def test_the_bus_reads_coils_and_discrete_inputs(box: ControlBox) -> None:
    bus = _bus(box.port)
    try:
        assert await bus.read(UNIT, 1, COIL, 1) == [0]
        assert await bus.read(UNIT, 2, INPUT, 1) == [0]
        await box.switch_coil(True)
        await box.set_input(True)
        assert await bus.read(UNIT, 1, COIL, 1) == [1]
        assert await bus.read(UNIT, 2, INPUT, 1) == [1]
        # Only the bits asked for, not the padding of the answer's last byte; neighbours stay 0.
        assert await bus.read(UNIT, 1, COIL - 1, 3) == [0, 1, 0]
        assert await bus.read(UNIT, 2, INPUT, 2) == [1, 0]
        await box.switch_coil(False)
        assert await bus.read(UNIT, 1, COIL, 1) == [0]
        with pytest.raises(MeterConfigError, match="function code 5 reads nothing"):
            await bus.read(UNIT, 5, COIL, 1)
    finally:
        await bus.close()


async def test_a_meter_read_stays_registers(box: ControlBox) -> None:
    """A meter's blocks and a profile's registers cannot pick coils or inputs by accident."""
    bus = _bus(box.port)
    try:
        for fc in (1, 2):
            with pytest.raises(MeterConfigError, match="cannot read registers"):
                await bus.read_blocks(UNIT, [BlockRead(fc, 0, 1, ())])
            with pytest.raises(ValidationError):
                Register.model_validate(
                    {"address": 0, "type": "uint16", "unit": "V", "function_code": fc}
                )
        assert bus.requests == 0
    finally:
        await bus.close()


@pytest.mark.parametrize(
    ("function_code", "active_value"),
    [(1, None), (2, 0)],  # a coil that closes; a normally-closed input that opens
    ids=["coil", "discrete-input-normally-closed"],
)
async def test_a_contact_lowers_the_site_while_it_holds(
    box: ControlBox, db: Database, function_code: int, active_value: int | None
) -> None:
    limit: dict[str, Any] = {
        "name": "relay",
        "source": "modbus",
        "bus": "box",
        "unit_id": UNIT,
        "function_code": function_code,
        "address": COIL if function_code == 1 else INPUT,
        "limit_a": 40,
        "poll_interval": 0.05,
    }
    if active_value is not None:
        limit["active_value"] = active_value
    if function_code == 2:
        await box.set_input(True)  # closed at rest: not active
    rig = Rig(_config(limit, port=box.port), db)
    await rig.start()
    try:
        state = rig.limits.states["relay"]
        await rig.controller.wait_until(lambda: state.read, 10)
        assert state.last_error is None
        assert not state.active
        assert rig.controller.state().limit_a == (100.0, 100.0, 100.0)

        if function_code == 1:
            await box.switch_coil(True)
        else:
            await box.set_input(False)
        await rig.controller.wait_until(lambda: rig.controller.state().limit_a[0] == 40.0, 10)

        if function_code == 1:
            await box.switch_coil(False)
        else:
            await box.set_input(True)
        await rig.controller.wait_until(lambda: rig.controller.state().limit_a[0] == 100.0, 10)
        assert state.last_error is None
    finally:
        await rig.close()
