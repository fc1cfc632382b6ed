"""SimMeter over real sockets and a socat pty pair, read with a plain pymodbus client.

These tests deliberately do not use edgegw's own bus code: they check that what the
simulated meter puts on the wire is exactly what ``encode_image`` says a real meter sends,
and that each fault looks on the wire like the real fault.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerRTU

from edgegw.energy.meters import default_profiles_dir
from edgegw.energy.registers import (
    MeterProfile,
    Quantity,
    Reading,
    encode_image,
    load_profiles,
    plan_reads,
)
from edgegw.sim.meter import SimMeter, default_reading, virtual_serial_pair

# Fits every shipped profile's registers (the same values test_registers round-trips).
BUSY = Reading(
    voltage_l1_v=230.1,
    voltage_l2_v=229.8,
    voltage_l3_v=231.4,
    current_l1_a=12.345,
    current_l2_a=0.5,
    current_l3_a=31.9,
    power_l1_w=2840.5,
    power_l2_w=-120.25,
    power_l3_w=7300.2,
    power_w=10020.45,
    energy_import_wh=123_456_789.0,
    energy_export_wh=4_567_890.0,
    frequency_hz=50.02,
)


@pytest.fixture(autouse=True)
def _quiet_pymodbus() -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


PROFILES = load_profiles(default_profiles_dir())


@pytest.fixture
async def tcp_client() -> AsyncIterator[list[AsyncModbusTcpClient]]:
    """Clients made by a test; all closed at teardown."""
    made: list[AsyncModbusTcpClient] = []
    yield made
    for client in made:
        client.close()


async def connect_tcp(
    sim: SimMeter, made: list[AsyncModbusTcpClient], timeout: float = 0.2
) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient(
        "127.0.0.1", port=sim.port, timeout=timeout, retries=0, reconnect_delay=0
    )
    made.append(client)
    assert await client.connect()
    return client


async def read(
    client: AsyncModbusTcpClient | AsyncModbusSerialClient,
    fc: int,
    address: int,
    count: int,
    unit: int = 1,
) -> list[int]:
    if fc == 3:
        response = await client.read_holding_registers(address, count=count, device_id=unit)
    else:
        response = await client.read_input_registers(address, count=count, device_id=unit)
    assert not response.isError(), response
    return list(response.registers)


@pytest.mark.parametrize("profile_id", sorted(PROFILES))
async def test_serves_exactly_the_encoded_image_of_every_profile(
    profile_id: str, tcp_client: list[AsyncModbusTcpClient]
) -> None:
    profile = PROFILES[profile_id]
    expected = encode_image(profile, BUSY)
    async with SimMeter(profile, reading=BUSY, live=False) as sim:
        client = await connect_tcp(sim, tcp_client)
        for block in plan_reads(profile):
            words = await read(client, block.function_code, block.address, block.count)
            page = expected[block.function_code]
            assert words == [page.get(a, 0) for a in range(block.address, block.end)]
        assert sim.requests == len(plan_reads(profile))


async def test_unused_register_space_answers_illegal_address(
    tcp_client: list[AsyncModbusTcpClient],
) -> None:
    async with SimMeter() as sim:  # the SDM630 keeps its values in input registers (FC4)
        client = await connect_tcp(sim, tcp_client)
        response = await client.read_holding_registers(0, count=2, device_id=1)
        assert response.isError()
        assert response.exception_code == 2


async def test_set_currents_derives_power_at_unity_power_factor() -> None:
    meter = SimMeter(live=False)
    meter.set_voltages(230.0, 220.0, 240.0)
    meter.set_currents(10.0, 20.0, 0.0)
    reading = meter.reading
    assert reading.currents_a == (10.0, 20.0, 0.0)
    assert reading.powers_w == (2300.0, 4400.0, 0.0)
    assert reading.power_w == 6700.0
    meter.set_power(-3000.0)  # PV export overrides the derived power
    assert meter.reading.power_w == -3000.0
    assert meter.reading.power_l1_w == -1000.0


async def test_live_meter_counts_energy_and_wobbles_until_frozen() -> None:
    clock = FakeClock()
    meter = SimMeter(clock=clock)
    meter.set_energy(import_wh=1000.0, export_wh=0.0)
    meter.set_power(3600.0)
    clock.now += 10  # 10 s at 3.6 kW = 10 Wh
    assert meter.reading.energy_import_wh == pytest.approx(1010.0)
    meter.set_power(-7200.0)
    clock.now += 5
    assert meter.reading.energy_export_wh == pytest.approx(10.0)
    assert meter.reading.energy_import_wh == pytest.approx(1010.0)

    first, second = meter.image(), meter.image()
    assert first != second  # the voltage moved by 0.1 V
    meter.freeze()
    frozen = meter.image()
    meter.set_currents(40.0, 40.0, 40.0)
    clock.now += 60
    assert meter.image() == frozen == meter.image()
    meter.unfreeze()
    assert meter.image() != frozen


async def test_fixed_meter_serves_the_same_values_every_time() -> None:
    meter = SimMeter(live=False, reading=BUSY)
    assert meter.image() == meter.image() == encode_image(meter.profile, BUSY)


async def test_faults_on_tcp(tcp_client: list[AsyncModbusTcpClient]) -> None:
    async with SimMeter(reading=default_reading(), live=False) as sim:
        client = await connect_tcp(sim, tcp_client)

        sim.fail_with(2)
        response = await client.read_input_registers(0, count=2, device_id=1)
        assert response.isError()
        assert response.exception_code == 2

        sim.clear_faults()
        sim.serve_nan(Quantity.CURRENT_L2)
        words = await read(client, 4, 0x0006, 6)
        values = [struct.unpack(">f", struct.pack(">HH", *words[i : i + 2]))[0] for i in (0, 2, 4)]
        assert values[0] == 0.0
        assert math.isnan(values[1])
        assert values[2] == 0.0

        sim.clear_faults()
        sim.silent = True
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0, count=2, device_id=1)

        with pytest.raises(ValueError, match="CRC"):
            sim.corrupt_crc = True


async def test_unknown_unit_gets_gateway_no_response_on_tcp(
    tcp_client: list[AsyncModbusTcpClient],
) -> None:
    async with SimMeter() as sim:
        client = await connect_tcp(sim, tcp_client)
        response = await client.read_input_registers(0, count=2, device_id=9)
        assert response.isError()
        assert response.exception_code == 11


async def test_stop_and_start_again_on_the_same_port(
    tcp_client: list[AsyncModbusTcpClient],
) -> None:
    sim = SimMeter(live=False)
    await sim.start()
    port = sim.port
    assert port > 0
    await sim.stop()
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.2, retries=0, reconnect_delay=0)
    tcp_client.append(client)
    assert not await client.connect()  # refused while the meter is gone
    await sim.start()
    try:
        assert sim.port == port
        assert await client.connect()
        assert len(await read(client, 4, 0, 2)) == 2
    finally:
        await sim.stop()


async def test_in_flight_counter_sees_overlapping_requests(
    tcp_client: list[AsyncModbusTcpClient],
) -> None:
    """Two clients at once do overlap: the counter the bus tests rely on can see it."""
    async with SimMeter(response_delay=0.05) as sim:
        first = await connect_tcp(sim, tcp_client, timeout=2)
        second = await connect_tcp(sim, tcp_client, timeout=2)
        await asyncio.gather(read(first, 4, 0, 2), read(second, 4, 0, 2))
        assert sim.max_in_flight == 2


async def test_add_unit_only_before_start() -> None:
    sim = SimMeter()
    sim.add_unit(2)
    with pytest.raises(ValueError, match="already"):
        sim.add_unit(2)
    async with sim:
        with pytest.raises(RuntimeError, match="before start"):
            sim.add_unit(3)


async def test_rtu_requires_a_device() -> None:
    with pytest.raises(ValueError, match="device"):
        SimMeter(transport="rtu")


# ------------------------------------------------------------------------------------------
# RTU over a socat pty pair
# ------------------------------------------------------------------------------------------


@pytest.fixture
async def ptys(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    if shutil.which("socat") is None:
        pytest.skip("socat not installed (apt install socat): no pty pair for RTU")
    async with virtual_serial_pair(tmp_path) as pair:
        yield pair


async def test_rtu_two_units_absent_units_and_bad_crc(ptys: tuple[str, str]) -> None:
    meter_end, gateway_end = ptys
    profile: MeterProfile = PROFILES["eastron-sdm630"]
    sim = SimMeter(profile, transport="rtu", device=meter_end, reading=BUSY, live=False)
    second = sim.add_unit(2, reading=default_reading())
    received: list[bytes] = []

    def trace(sending: bool, data: bytes) -> bytes:
        if not sending:
            received.append(data)
        return data

    client = AsyncModbusSerialClient(
        gateway_end, baudrate=9600, timeout=0.2, retries=0, reconnect_delay=0, trace_packet=trace
    )
    async with sim:
        assert await client.connect()
        try:
            block = plan_reads(profile)[0]
            expected = encode_image(profile, BUSY)[4]
            words = await read(client, 4, block.address, block.count)
            assert words == [expected.get(a, 0) for a in range(block.address, block.end)]
            words2 = await read(client, 4, 0x0006, 2, unit=2)
            assert struct.unpack(">f", struct.pack(">HH", *words2))[0] == 0.0
            assert (sim.reads, second.reads) == (1, 1)

            received.clear()
            with pytest.raises(ModbusIOException):  # absent unit: silence, as on RS-485
                await client.read_input_registers(0, count=2, device_id=7)
            assert received == []

            sim.corrupt_crc = True
            with pytest.raises(ModbusIOException):  # pymodbus drops the frame
                await client.read_input_registers(0, count=2, device_id=1)
            frame = b"".join(received)
            assert frame[:3] == bytes([1, 4, 4])
            assert not FramerRTU.check_CRC(frame[:-2], int.from_bytes(frame[-2:], "big"))
        finally:
            client.close()
