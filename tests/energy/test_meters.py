"""The meter bus and poller against real pymodbus servers, over TCP and over RTU on ptys.

The simulated meter (``edgegw.sim.meter.SimMeter``) serves the SDM630 register map on a
TCP port or on one end of a ``socat`` pty pair; the code under test reads the other end.
Every failure is produced on the wire (silence, exception responses, corrupted frames, a
server that goes away) rather than mocked, so what the tests see is what pymodbus does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import time
import tty
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymodbus.framer import FramerRTU

from edgegw.config import BusConfig, MeterConfig, parse_config
from edgegw.energy.meters import (
    HealthState,
    MeterConfigError,
    MeterHealth,
    MeterPoller,
    MeterSample,
    MeterService,
    ModbusBus,
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusTimeout,
    SanityLimits,
    TemplateProfileError,
    default_profiles_dir,
    describe_bus,
    find_profile,
    implausible,
    probe,
    rtu_silent_interval,
    scan,
)
from edgegw.energy.registers import MeterProfile, Quantity, Reading, parse_profile
from edgegw.sim.meter import SimMeter, virtual_serial_pair
from edgegw.tasks import TaskOwner

KNOWN = Reading(
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
    energy_import_wh=123_456_000.0,  # float32 kWh holds whole kWh at this size
    energy_export_wh=4_567_000.0,
    frequency_hz=50.02,
)

OTHER = Reading(
    voltage_l1_v=228.0,
    voltage_l2_v=228.5,
    voltage_l3_v=229.0,
    current_l1_a=5.0,
    current_l2_a=6.0,
    current_l3_a=7.0,
    power_l1_w=1140.0,
    power_l2_w=1371.0,
    power_l3_w=1603.0,
    power_w=4114.0,
    energy_import_wh=42_000.0,
    energy_export_wh=0.0,
    frequency_hz=49.98,
)


@pytest.fixture(autouse=True)
def _quiet_pymodbus() -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


@pytest.fixture(scope="module")
def sdm630() -> MeterProfile:
    return find_profile("eastron-sdm630")


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    """A started SimMeter and the bus settings that reach it."""

    sim: SimMeter
    bus: BusConfig
    transport: str


@pytest.fixture
async def ptys(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    if shutil.which("socat") is None:
        pytest.skip("socat not installed (apt install socat): RTU tests need a pty pair")
    async with virtual_serial_pair(tmp_path) as pair:
        yield pair


@pytest.fixture
async def serve(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Start SimMeters on TCP or RTU (the test's ``transport`` parameter); stop at teardown."""
    stack = contextlib.AsyncExitStack()
    counter = itertools.count()

    async def start(
        transport: str, *, units: dict[int, Reading] | None = None, **kw: Any
    ) -> Served:
        units = units or {1: KNOWN}
        (first, reading), *others = units.items()
        kw.setdefault("live", False)
        if transport == "tcp":
            sim = SimMeter(unit_id=first, reading=reading, **kw)
            bus = BusConfig(transport="tcp", host="127.0.0.1", port=1, timeout=0.2, retries=0)
        else:
            if shutil.which("socat") is None:
                pytest.skip("socat not installed (apt install socat): RTU tests need a pty pair")
            directory = tmp_path / f"pty{next(counter)}"
            directory.mkdir()
            meter_end, gateway_end = await stack.enter_async_context(virtual_serial_pair(directory))
            sim = SimMeter(unit_id=first, reading=reading, transport="rtu", device=meter_end, **kw)
            bus = BusConfig(transport="rtu", device=gateway_end, timeout=0.2, retries=0)
        for unit_id, unit_reading in others:
            sim.add_unit(unit_id, reading=unit_reading)
        await sim.start()
        stack.push_async_callback(sim.stop)
        if transport == "tcp":
            bus = bus.model_copy(update={"port": sim.port})
        return Served(sim, bus, transport)

    yield start
    await stack.aclose()


@pytest.fixture
async def buses() -> AsyncIterator[Callable[..., ModbusBus]]:
    made: list[ModbusBus] = []

    def make(config: BusConfig, **kw: Any) -> ModbusBus:
        kw.setdefault("reconnect_min_delay", 0)
        kw.setdefault("reconnect_max_delay", 0)
        bus = ModbusBus(config, **kw)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close()


def meter_config(**kw: Any) -> MeterConfig:
    return MeterConfig(**{"name": "grid", "profile": "eastron-sdm630", **kw})


TRANSPORTS = pytest.mark.parametrize("transport", ["tcp", "rtu"])


# ------------------------------------------------------------------------------------------
# Reading and decoding
# ------------------------------------------------------------------------------------------


@TRANSPORTS
async def test_reading_decoded_with_the_planned_block_reads(
    transport: str, serve: Any, buses: Any, sdm630: MeterProfile
) -> None:
    served: Served = await serve(transport)
    clock = FakeClock()
    poller = MeterPoller(meter_config(), sdm630, buses(served.bus), clock=clock)
    sample = await poller.poll_once()
    assert sample is not None
    assert sample.reading.values() == KNOWN.values()
    assert sample == MeterSample("grid", sample.reading, 500.0)
    assert poller.latest is sample
    assert served.sim.requests == len(poller.blocks) == 2  # 60 registers per request at most
    assert poller.health.state is HealthState.OK
    assert poller.health.last_good_at == 500.0
    assert poller.last_cycle_s == 0.0  # by the fake clock; the real figure is in the bench


async def test_listeners_get_every_valid_sample_and_a_failing_one_is_isolated(
    serve: Any, buses: Any, sdm630: MeterProfile
) -> None:
    served: Served = await serve("tcp")
    poller = MeterPoller(meter_config(), sdm630, buses(served.bus))
    got: list[MeterSample] = []

    def broken(sample: MeterSample) -> None:
        raise RuntimeError("listener bug")

    poller.add_listener(broken)
    poller.add_listener(got.append)
    first = await poller.poll_once()
    served.sim.set_currents(40.0, 41.0, 42.0)
    second = await poller.poll_once()
    served.sim.fail_with(4)
    assert await poller.poll_once() is None
    assert got == [first, second]
    assert second is not None
    assert second.reading.currents_a == (40.0, 41.0, 42.0)


# ------------------------------------------------------------------------------------------
# One bus, several meters
# ------------------------------------------------------------------------------------------


@TRANSPORTS
async def test_two_meters_share_a_bus_without_overlapping_requests(
    transport: str, serve: Any, buses: Any, sdm630: MeterProfile
) -> None:
    served: Served = await serve(transport, units={1: KNOWN, 2: OTHER}, response_delay=0.003)
    bus = buses(served.bus.model_copy(update={"timeout": 1.0}))
    first = MeterPoller(meter_config(name="a", unit_id=1), sdm630, bus)
    second = MeterPoller(meter_config(name="b", unit_id=2), sdm630, bus)
    samples = await asyncio.gather(*(p.poll_once() for _ in range(8) for p in (first, second)))
    readings = [s.reading.values() if s else None for s in samples]
    assert readings == [KNOWN.values(), OTHER.values()] * 8
    assert served.sim.requests == 16 * len(first.blocks)
    assert served.sim.max_in_flight == 1


@TRANSPORTS
async def test_rtu_keeps_the_silent_interval_between_frames(
    transport: str, serve: Any, buses: Any
) -> None:
    served: Served = await serve(transport)
    arrivals: list[float] = []
    served.sim.add_request_listener(lambda *_: arrivals.append(time.monotonic()))
    bus = buses(served.bus.model_copy(update={"interframe_delay": 0.02}))
    await asyncio.gather(*(bus.read(1, 4, 0, 2) for _ in range(4)))
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    extra = rtu_silent_interval(9600, 10) if transport == "rtu" else 0.0
    assert len(gaps) == 3
    assert min(gaps) >= 0.02 + extra - 0.002


def test_silent_interval_follows_the_serial_line_spec() -> None:
    assert rtu_silent_interval(9600) == pytest.approx(3.5 * 11 / 9600)
    assert rtu_silent_interval(115200) == 0.00175


# ------------------------------------------------------------------------------------------
# Failures told apart
# ------------------------------------------------------------------------------------------


@TRANSPORTS
async def test_no_answer_is_a_timeout_and_is_retried(
    transport: str, serve: Any, buses: Any
) -> None:
    served: Served = await serve(transport)
    served.sim.silent = True
    bus = buses(served.bus.model_copy(update={"retries": 1, "timeout": 0.1}))
    with pytest.raises(ModbusTimeout, match=r"unit 1 FC4 0x0000\+2 .* no answer") as caught:
        await bus.read(1, 4, 0, 2)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.retryable
    assert served.sim.reads == 2  # the first try and one retry


@TRANSPORTS
async def test_exception_response_carries_its_code_and_is_not_retried(
    transport: str, serve: Any, buses: Any
) -> None:
    served: Served = await serve(transport)
    served.sim.fail_with(2)
    bus = buses(served.bus.model_copy(update={"retries": 2}))
    with pytest.raises(ModbusExceptionResponse, match="illegal data address") as caught:
        await bus.read(1, 4, 0, 2)
    assert caught.value.code == 2
    assert caught.value.code_name == "illegal data address"
    assert served.sim.reads == 1


async def test_corrupted_crc_is_a_frame_error(serve: Any, buses: Any) -> None:
    served: Served = await serve("rtu")
    bus = buses(served.bus.model_copy(update={"retries": 1}))
    served.sim.corrupt_crc = True
    with pytest.raises(ModbusFrameError, match="CRC mismatch in a 9-byte answer"):
        await bus.read(1, 4, 0, 2)
    assert served.sim.reads == 2  # garbled answers are retried like missing ones
    served.sim.corrupt_crc = False
    assert len(await bus.read(1, 4, 0, 2)) == 2


class RawPeer:
    """A tiny RTU 'meter' on a pty that answers every request with prepared bytes."""

    def __init__(self, path: str, answer: bytes) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.answer = answer
        self.pending = b""
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        self.pending += os.read(self.fd, 256)
        while len(self.pending) >= 8:  # a read request is 8 bytes
            self.pending = self.pending[8:]
            os.write(self.fd, self.answer)

    def close(self) -> None:
        self.loop.remove_reader(self.fd)
        os.close(self.fd)


def rtu_frame(unit: int, payload: bytes) -> bytes:
    frame = bytes([unit]) + payload
    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


GOOD_ANSWER = bytes([4, 4, 0x43, 0x66, 0x1A, 0x00])  # FC4, 4 bytes: 230.1 as float32


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (rtu_frame(1, GOOD_ANSWER)[:-1] + b"\x00", "CRC mismatch in a 9-byte answer"),
        (rtu_frame(7, GOOD_ANSWER), "answer from unit 7 to a request for unit 1"),
        (rtu_frame(1, GOOD_ANSWER)[:3], "truncated frame of 3 bytes"),
    ],
    ids=["bad-crc", "wrong-unit", "truncated"],
)
async def test_garbled_rtu_answers_from_a_raw_peer(
    answer: bytes, message: str, ptys: tuple[str, str], buses: Any
) -> None:
    meter_end, gateway_end = ptys
    peer = RawPeer(meter_end, answer)
    try:
        bus = buses(BusConfig(transport="rtu", device=gateway_end, timeout=0.1, retries=0))
        with pytest.raises(ModbusFrameError, match=message):
            await bus.read(1, 4, 0, 2)
        peer.answer = rtu_frame(1, GOOD_ANSWER)
        assert await bus.read(1, 4, 0, 2) == [0x4366, 0x1A00]
    finally:
        peer.close()


async def test_refused_connection_and_backoff(buses: Any) -> None:
    config = BusConfig(transport="tcp", host="127.0.0.1", port=1, timeout=0.5)
    bus = buses(config, reconnect_min_delay=30, reconnect_max_delay=60)
    with pytest.raises(ModbusConnectionError, match="cannot connect") as caught:
        await bus.read(1, 4, 0, 2)
    assert isinstance(caught.value, ConnectionError)
    with pytest.raises(ModbusConnectionError, match=r"next attempt in (29|30)\.\d s"):
        await bus.read(1, 4, 0, 2)  # no new attempt during the backoff
    assert bus.requests == 0


async def test_missing_serial_device_is_named(buses: Any, tmp_path: Path) -> None:
    config = BusConfig(transport="rtu", device=str(tmp_path / "ttyUSB9"))
    with pytest.raises(ModbusConnectionError, match=r"ttyUSB9 9600 8N1.*does not exist"):
        await buses(config).read(1, 4, 0, 2)


async def test_connection_lost_mid_request_fails_at_once(serve: Any, buses: Any) -> None:
    served: Served = await serve("tcp", response_delay=5)
    bus = buses(served.bus.model_copy(update={"timeout": 3.0}))
    arrived = asyncio.Event()
    served.sim.add_request_listener(lambda *_: arrived.set())

    async def pull_the_plug() -> None:
        await arrived.wait()
        await served.sim.stop()

    started = time.monotonic()
    results = await asyncio.gather(bus.read(1, 4, 0, 2), pull_the_plug(), return_exceptions=True)
    assert isinstance(results[0], ModbusConnectionError)
    assert "connection lost during the request" in str(results[0])
    assert time.monotonic() - started < 1.0  # not the 3 s timeout


async def test_closed_bus_refuses_reads(serve: Any, buses: Any) -> None:
    served: Served = await serve("tcp")
    bus = buses(served.bus)
    await bus.read(1, 4, 0, 2)
    await bus.close()
    with pytest.raises(ModbusConnectionError, match="closed"):
        await bus.read(1, 4, 0, 2)


# ------------------------------------------------------------------------------------------
# Rejected readings
# ------------------------------------------------------------------------------------------


def _nan(sim: SimMeter) -> None:
    sim.serve_nan(Quantity.CURRENT_L2)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (_nan, "current_l2: not a finite number"),
        (lambda sim: sim.set_currents(-5.0, 1.0, 1.0), "current_l1: -5 A is outside"),
        (lambda sim: sim.set_currents(1.0, 20_000.0, 1.0), "current_l2: 20000 A is outside"),
        (lambda sim: sim.set_voltages(230.0, 230.0, 612.0), "voltage_l3: 612 V is outside"),
        (lambda sim: sim.set_energy(import_wh=-1.0), "energy_import: -1 Wh"),
    ],
    ids=["nan", "negative-current", "absurd-current", "absurd-voltage", "negative-energy"],
)
async def test_bad_values_are_rejected_and_never_passed_on(
    spoil: Callable[[SimMeter], None], message: str, serve: Any, buses: Any, sdm630: MeterProfile
) -> None:
    served: Served = await serve("tcp")
    poller = MeterPoller(meter_config(), sdm630, buses(served.bus))
    seen: list[MeterSample] = []
    poller.add_listener(seen.append)
    good = await poller.poll_once()
    spoil(served.sim)
    assert await poller.poll_once() is None
    assert await poller.poll_once() is None
    assert good is not None and poller.latest is not None
    assert poller.latest.reading == good.reading and poller.latest.at == good.at
    assert poller.latest.failed_at is not None  # still the last valid one, marked as such
    assert seen == [good]
    health = poller.health
    assert health.state is HealthState.ERROR
    assert health.error_kind == "bad_reading"
    assert health.last_error is not None
    assert message in health.last_error
    assert health.consecutive_failures == 2
    assert poller.reads_failed == 2


def test_implausible_limits() -> None:
    limits = SanityLimits(max_current_a=100.0)
    fine = Reading(current_l1_a=-0.05, voltage_l1_v=0.0, power_w=-5000.0, frequency_hz=50.0)
    assert implausible(fine, limits) == {}
    bad = Reading(current_l1_a=100.5, power_w=1e9, frequency_hz=400.0)
    assert set(implausible(bad, limits)) == {
        Quantity.CURRENT_L1,
        Quantity.POWER,
        Quantity.FREQUENCY,
    }


async def test_frozen_registers_make_the_meter_stale_until_they_move(
    serve: Any, buses: Any, sdm630: MeterProfile
) -> None:
    served: Served = await serve("tcp", live=True)
    clock = FakeClock()
    poller = MeterPoller(
        meter_config(poll_interval=1.0), sdm630, buses(served.bus), clock=clock, frozen_after=3
    )
    for _ in range(5):  # a live meter moves: never stale
        clock.now += 1
        sample = await poller.poll_once()
        assert sample is not None and sample.at == clock.now
    served.sim.freeze()
    clock.now += 1
    first = await poller.poll_once()  # the frozen registers, read for the first time
    assert first is not None and first.at == clock.now
    for _ in range(2):  # the same again: the reading is no newer than its first read
        clock.now += 1
        assert await poller.poll_once() == first
    clock.now += 1
    assert await poller.poll_once() is None  # unchanged for 3 s: stale
    assert poller.health.state is HealthState.STALE
    assert poller.health.error_kind == "frozen"
    assert "same registers for 3.0 s (4 reads)" in (poller.health.last_error or "")
    assert poller.latest is not None and poller.latest.at == first.at
    assert poller.latest.failed_at == clock.now  # marked: good for a cut, not a raise
    served.sim.unfreeze()
    clock.now += 1
    assert await poller.poll_once() is not None
    health: MeterHealth = poller.health  # a fresh object: the poll replaced it
    assert health.state is HealthState.OK


async def test_a_meter_with_nothing_that_moves_is_not_called_frozen(serve: Any, buses: Any) -> None:
    data: dict[str, Any] = {
        "format": 1,
        "id": "currents-only",
        "name": "Currents only",
        "products": ["Currents only"],
        "modbus": {"function_code": 4},
        "tcp": {},
        "registers": {
            q: {"address": 2 * i, "type": "float32", "unit": "A"}
            for i, q in enumerate(("current_l1", "current_l2", "current_l3"))
        },
    }
    profile = parse_profile(data)
    idle = Reading(current_l1_a=0.0, current_l2_a=0.0, current_l3_a=0.0)
    served: Served = await serve("tcp", profile=profile, units={1: idle})
    clock = FakeClock()
    poller = MeterPoller(
        meter_config(poll_interval=1.0), profile, buses(served.bus), clock=clock, frozen_after=2
    )
    for _ in range(4):  # 0 A and nothing else: the same registers are the truth
        clock.now += 1
        sample = await poller.poll_once()
        assert sample is not None and sample.at == clock.now
    served.sim.set_currents(3.0, 0.0, 0.0)  # a current: now they must move
    for _ in range(2):
        clock.now += 1
        assert await poller.poll_once() is not None
    clock.now += 1
    assert await poller.poll_once() is None
    assert poller.health.state is HealthState.STALE


# ------------------------------------------------------------------------------------------
# The service: loss and recovery
# ------------------------------------------------------------------------------------------


def service_config(bus: BusConfig, *, poll_interval: float = 0.02) -> Any:
    return parse_config(
        {
            "store": {"path": "/nonexistent/unused.db"},
            "buses": {"main": bus.model_dump()},
            "meters": [
                {
                    "name": "grid",
                    "profile": "eastron-sdm630",
                    "role": "site",
                    "poll_interval": poll_interval,
                },
            ],
        }
    )


class Watch:
    """Turns a poller's callbacks into events a test can await."""

    def __init__(self, poller: MeterPoller) -> None:
        self.samples: asyncio.Queue[MeterSample] = asyncio.Queue()
        self.states: asyncio.Queue[MeterHealth] = asyncio.Queue()
        poller.add_listener(self.samples.put_nowait)
        poller.add_health_listener(self.states.put_nowait)

    async def state(self, wanted: HealthState) -> MeterHealth:
        async with asyncio.timeout(5):
            while True:
                health = await self.states.get()
                if health.state is wanted:
                    return health

    async def sample(self) -> MeterSample:
        async with asyncio.timeout(5):
            return await self.samples.get()


@TRANSPORTS
async def test_meter_loss_and_recovery(transport: str, serve: Any) -> None:
    served: Served = await serve(transport, live=True)
    service = MeterService(
        service_config(served.bus.model_copy(update={"timeout": 0.1})),
        reconnect_min_delay=0.01,
        reconnect_max_delay=0.05,
    )
    site = service.site_meter
    assert site is not None
    watch = Watch(site)
    service.start()
    try:
        await watch.state(HealthState.OK)
        before = await watch.sample()
        await served.sim.stop()
        lost = await watch.state(HealthState.ERROR)
        expected = "timeout" if transport == "rtu" else "connection"
        assert lost.error_kind == expected
        assert lost.last_good_at is not None
        assert lost.last_good_at >= before.at
        assert site.latest is not None
        assert site.latest.at <= lost.last_good_at
        await served.sim.start()
        back = await watch.state(HealthState.OK)
        assert back.consecutive_failures == 0
        after = await watch.sample()
        assert after.at > before.at
    finally:
        await service.close()
    assert all(task.done() for task in asyncio.all_tasks() if task.get_name().startswith("meters/"))


async def test_a_lost_meter_error_is_one_level_deep_and_cleared_on_recovery(
    serve: Any, buses: Any, sdm630: MeterProfile
) -> None:
    """Issue 21 item 7: each refused attempt during the reconnect backoff used to quote the
    previous refusal ("last error: ... (last error: ...)"), nine levels and ~500 characters
    deep; and after recovery `energy state` still showed "ok — <old error>"."""
    served: Served = await serve("tcp", live=True)
    # A first read with room to connect on a busy machine: with a 60 s back-off a first
    # refusal would not be retried within the test.
    patient = served.bus.model_copy(update={"timeout": 2.0})
    waiting = buses(patient, reconnect_min_delay=60, reconnect_max_delay=60)
    poller = MeterPoller(meter_config(), sdm630, waiting)
    assert await poller.poll_once() is not None
    await served.sim.stop()
    for _ in range(10):
        assert await poller.poll_once() is None
    text = poller.health.last_error or ""
    assert "is not connected; next attempt in" in text
    assert text.count("last error") == 1
    assert text.count("bus 'main'") + text.count("bus 'bus'") <= 2
    assert len(text) < 300
    # Recovery clears the error (a bus without backoff, so the next poll reconnects).
    quick = buses(served.bus)
    poller = MeterPoller(meter_config(), sdm630, quick)
    assert await poller.poll_once() is None
    assert poller.health.last_error is not None
    await served.sim.start()
    assert await poller.poll_once() is not None
    recovered: MeterHealth = poller.health
    assert recovered.state is HealthState.OK
    assert recovered.last_error is None and recovered.error_kind is None


async def test_service_runs_each_meter_in_a_named_task(serve: Any) -> None:
    served: Served = await serve("tcp", live=True)
    service = MeterService(service_config(served.bus))
    service.start()
    try:
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert "meters/meter:grid" in names
        site = service.site_meter
        assert site is not None
        await Watch(site).sample()
        assert site.last_cycle_s is not None
        assert 0 < site.last_cycle_s < 1
    finally:
        await service.close()
    assert "meters/meter:grid" not in {t.get_name() for t in asyncio.all_tasks()}


async def test_a_bug_during_a_poll_does_not_end_polling(
    serve: Any, buses: Any, sdm630: MeterProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: Served = await serve("tcp", live=True)
    bus = buses(served.bus)
    poller = MeterPoller(meter_config(poll_interval=0.01), sdm630, bus)
    real = bus.read_plan
    calls = 0

    async def buggy(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug")
        return await real(*args, **kwargs)

    monkeypatch.setattr(bus, "read_plan", buggy)
    watch = Watch(poller)
    owner = TaskOwner("test")
    owner.spawn(poller.run(), "poller")
    try:
        failed = await watch.state(HealthState.ERROR)
        assert failed.error_kind == "internal"
        assert "RuntimeError('bug')" in (failed.last_error or "")
        await watch.state(HealthState.OK)
    finally:
        await owner.close()


# ------------------------------------------------------------------------------------------
# Configuration errors
# ------------------------------------------------------------------------------------------


def _config(meters: list[dict[str, Any]], transport: str = "tcp") -> Any:
    bus: dict[str, Any] = (
        {"transport": "tcp", "host": "127.0.0.1"}
        if transport == "tcp"
        else {"transport": "rtu", "device": "/dev/ttyUSB0"}
    )
    return parse_config({"buses": {"main": bus}, "meters": meters})


def test_missing_profile_names_the_key_and_what_exists() -> None:
    with pytest.raises(MeterConfigError) as caught:
        MeterService(_config([{"profile": "acme-9000"}]))
    message = str(caught.value)
    assert "meters[0].profile: no meter profile 'acme-9000'" in message
    assert "eastron-sdm630" in message
    assert isinstance(caught.value, ModbusError)
    assert not caught.value.retryable


def test_duplicate_names_units_and_rtu_broadcast_are_refused() -> None:
    meters = [
        {"name": "a", "profile": "eastron-sdm630", "unit_id": 1},
        {"name": "a", "profile": "eastron-sdm630", "unit_id": 2, "role": "monitor"},
        {"name": "b", "profile": "eastron-sdm630", "unit_id": 1, "role": "monitor"},
    ]
    with pytest.raises(MeterConfigError) as caught:
        MeterService(_config(meters))
    message = str(caught.value)
    assert "meters[1].name: 'a' is already used by meters[0]" in message
    assert "meters[2].unit_id: unit 1 on bus 'main' is already meters[0]" in message
    with pytest.raises(MeterConfigError, match=r"meters\[0\].unit_id: 0 is the broadcast"):
        MeterService(_config([{"profile": "eastron-sdm630", "unit_id": 0}], "rtu"))


def test_profiles_directory_is_injectable(tmp_path: Path) -> None:
    source = default_profiles_dir() / "eastron-sdm630.toml"
    (tmp_path / "my-meter.toml").write_text(
        source.read_text().replace('id = "eastron-sdm630"', 'id = "my-meter"')
    )
    service = MeterService(
        _config(
            [
                {"name": "main", "profile": "my-meter"},
                {"name": "sub", "profile": "my-meter", "unit_id": 2, "role": "monitor"},
            ]
        ),
        profiles_dir=tmp_path,
    )
    assert set(service.pollers) == {"main", "sub"}
    assert service.site_meter is service.pollers["main"]
    assert service.pollers["main"].bus is service.pollers["sub"].bus
    assert service.pollers["main"].profile.id == "my-meter"
    with pytest.raises(MeterConfigError, match=r"no meter profile 'eastron-sdm630'.*my-meter"):
        MeterService(_config([{"profile": "eastron-sdm630"}]), profiles_dir=tmp_path)


def test_template_profile_is_refused_for_a_configured_meter(tmp_path: Path) -> None:
    generic = default_profiles_dir() / "generic.toml"
    with pytest.raises(MeterConfigError) as caught:
        MeterService(_config([{"profile": "generic"}]))
    message = str(caught.value)
    assert message.startswith(f"meters[0].profile: meter profile 'generic' ({generic}) is a ")
    for what in ("template = true", "<vendor>-<model>.toml", "[registers]", "[modbus]"):
        assert what in message
    assert not caught.value.retryable
    with pytest.raises(TemplateProfileError, match="is a template"):
        find_profile("generic", allow_template=False)
    # Showing or simulating the template is fine; only reading a real meter with it is not.
    assert find_profile("generic").template
    # The installer's filled-in copy is a meter like any other.
    text = generic.read_text().replace('id = "generic"', 'id = "acme-pm3"')
    (tmp_path / "acme-pm3.toml").write_text(
        "\n".join(line for line in text.splitlines() if not line.startswith("template ="))
    )
    service = MeterService(_config([{"profile": "acme-pm3"}]), profiles_dir=tmp_path)
    assert not service.pollers["site"].profile.template


def test_no_site_meter_when_only_monitors() -> None:
    service = MeterService(_config([{"profile": "eastron-sdm630", "role": "monitor"}]))
    assert service.site_meter is None


# ------------------------------------------------------------------------------------------
# probe and scan
# ------------------------------------------------------------------------------------------


async def test_probe_reads_everything_and_marks_bad_values(
    serve: Any, sdm630: MeterProfile
) -> None:
    served: Served = await serve("tcp")
    reading = await probe(served.bus, sdm630, 1)
    assert reading.values() == KNOWN.values()
    served.sim.serve_nan(Quantity.FREQUENCY)
    served.sim.set_currents(12.345, -50.0, 31.9)
    reading = await probe(served.bus, sdm630, 1)
    assert reading.frequency_hz is None
    assert reading.current_l2_a is None
    assert set(reading.invalid) == {Quantity.FREQUENCY, Quantity.CURRENT_L2}
    assert reading.current_l1_a == 12.345


@TRANSPORTS
async def test_scan_finds_the_units_that_answer(
    transport: str, serve: Any, sdm630: MeterProfile
) -> None:
    served: Served = await serve(transport, units={1: KNOWN, 3: OTHER})
    served.sim.units[3].fail_with(2)  # present, though its map is wrong: still found
    config = served.bus.model_copy(update={"timeout": 0.05, "retries": 3})
    assert await scan(config, [1, 2, 3, 4], sdm630) == [1, 3]


async def test_scan_of_an_unreachable_bus_raises(sdm630: MeterProfile, tmp_path: Path) -> None:
    config = BusConfig(transport="rtu", device=str(tmp_path / "nothing"))
    with pytest.raises(ModbusConnectionError):
        await scan(config, [1], sdm630)


# ------------------------------------------------------------------------------------------
# RTU over TCP (a transparent RS-485-to-Ethernet converter)
# ------------------------------------------------------------------------------------------


async def test_rtu_over_tcp_reads_through_a_transparent_converter(
    buses: Any, sdm630: MeterProfile
) -> None:
    """evcc's `rs485tcpip`: RTU frames (unit id, CRC, no MBAP header) over a TCP stream."""
    sim = SimMeter(unit_id=3, reading=KNOWN, live=False, transport="rtu-over-tcp", host="127.0.0.1")
    async with sim:
        config = BusConfig(
            transport="rtu-over-tcp", host="127.0.0.1", port=sim.port, timeout=0.3, retries=0
        )
        assert describe_bus(config) == f"127.0.0.1:{sim.port} (RTU over TCP)"
        poller = MeterPoller(meter_config(unit_id=3), sdm630, buses(config))
        sample = await poller.poll_once()
        assert sample is not None, poller.health.last_error
        assert sample.reading.values() == KNOWN.values()
        # A Modbus TCP client (MBAP header) gets no answer from a converter.
        plain = MeterPoller(
            meter_config(unit_id=3),
            sdm630,
            buses(config.model_copy(update={"transport": "tcp"})),
        )
        assert await plain.poll_once() is None
        assert plain.health.error_kind in {"timeout", "frame", "connection"}
        # A corrupted CRC is reported as on a serial line.
        sim.corrupt_crc = True
        assert await poller.poll_once() is None
        assert poller.health.error_kind == "frame"
        assert "CRC" in (poller.health.last_error or "")


def test_rtu_over_tcp_bus_needs_a_host() -> None:
    with pytest.raises(ValueError, match="'rtu-over-tcp' bus needs host"):
        BusConfig(transport="rtu-over-tcp")
