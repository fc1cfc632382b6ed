"""``edgegw meter profiles | probe | scan`` against real SimMeters, over TCP and over RTU.

RTU runs through a ``socat`` pty pair (as in tests/energy/test_meters.py). The CLI runs
``asyncio.run`` itself, so it is invoked in a worker thread while the simulated meter serves
from the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from edgegw.cli.main import app
from edgegw.cli.meter import auto_timeout, parse_host_port, parse_units
from edgegw.energy.meters import default_profiles_dir
from edgegw.energy.registers import Quantity, Reading
from edgegw.sim.meter import SimMeter, virtual_serial_pair

runner = CliRunner()

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
    energy_import_wh=123_456_000.0,
    energy_export_wh=4_567_000.0,
    frequency_hz=50.02,
)

Start = Callable[..., Awaitable[tuple[SimMeter, list[str]]]]


@pytest.fixture(autouse=True)
def _quiet_pymodbus() -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


async def invoke(*args: str) -> Result:
    return await asyncio.to_thread(runner.invoke, app, list(args))


@pytest.fixture
async def meter(tmp_path: Path) -> AsyncIterator[Start]:
    """Start a SimMeter; returns it and the CLI flags that reach it (``--tcp`` or ``--rtu``)."""
    stack = contextlib.AsyncExitStack()

    async def start(
        transport: str = "tcp", units: dict[int, Reading] | None = None
    ) -> tuple[SimMeter, list[str]]:
        (first, reading), *others = (units or {1: KNOWN}).items()
        if transport == "tcp":
            sim = SimMeter(unit_id=first, reading=reading, live=False)
        else:
            if shutil.which("socat") is None:
                pytest.skip("socat not installed (apt install socat): RTU tests need a pty pair")
            meter_end, gateway_end = await stack.enter_async_context(virtual_serial_pair(tmp_path))
            sim = SimMeter(
                unit_id=first, reading=reading, live=False, transport="rtu", device=meter_end
            )
        for unit_id, unit_reading in others:
            sim.add_unit(unit_id, reading=unit_reading)
        await sim.start()
        stack.push_async_callback(sim.stop)
        flags = ["--tcp", f"127.0.0.1:{sim.port}"] if transport == "tcp" else ["--rtu", gateway_end]
        return sim, flags

    yield start
    await stack.aclose()


@pytest.fixture
def refused_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def probe_args(flags: list[str], *extra: str) -> list[str]:
    return ["meter", "probe", *flags, "--profile", "eastron-sdm630", "--timeout", "0.3", *extra]


# --------------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------------


def test_profiles_list_every_meter_with_its_factory_settings() -> None:
    result = runner.invoke(app, ["meter", "profiles"])
    assert result.exit_code == 0, result.output
    assert "eastron-sdm630" in result.stdout and "Eastron SDM630 Modbus V2" in result.stdout
    assert "RTU: unit 1, 9600 8N1 (factory default not confirmed)" in result.stdout
    assert "template" in result.stdout

    data = json.loads(runner.invoke(app, ["meter", "profiles", "--json"]).stdout)
    rows = {row["id"]: row for row in data["profiles"]}
    assert set(rows) == {p.stem for p in default_profiles_dir().glob("*.toml")}
    janitza = rows["janitza-umg96rm"]["serial"]
    assert (janitza["baudrate"], janitza["parity"], janitza["stopbits"]) == (115200, "N", 2)
    assert rows["generic"]["template"] is True
    assert "current_l1" in rows["eastron-sdm630"]["quantities"]


def test_a_broken_profile_is_named(tmp_path: Path) -> None:
    shutil.copy(default_profiles_dir() / "abb-b23.toml", tmp_path)
    (tmp_path / "broken.toml").write_text('format = 1\nid = "broken"\nnmae = "typo"\n')
    result = runner.invoke(app, ["meter", "profiles", "--dir", str(tmp_path), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [row["id"] for row in data["profiles"]] == ["abb-b23"]
    (broken,) = data["broken"]
    assert broken["file"].endswith("broken.toml")
    assert any("nmae: unknown key" in p for p in broken["problems"])


# --------------------------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
async def test_probe_prints_every_value(transport: str, meter: Start) -> None:
    _, flags = await meter(transport)
    result = await invoke(*probe_args(flags))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "13 of 13 values" in out
    assert "230.1 V" in out and "229.8 V" in out and "12.35 A" in out and "31.90 A" in out
    assert "Total power  10.02 kW" in out and "Imported     123456.0 kWh" in out
    assert "Frequency    50.02 Hz" in out
    assert "OK: compare these values with the meter's display." in out

    result = await invoke(*probe_args(flags, "--json"))
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["failed"] == [] and data["invalid"] == {}
    assert data["values"] == {q.field_name: v for q, v in KNOWN.values().items()}


async def test_probe_flags_unusable_values(meter: Start) -> None:
    sim, flags = await meter("tcp")
    sim.serve_nan(Quantity.FREQUENCY)
    sim.set_currents(12.345, -50.0, 31.9)
    result = await invoke(*probe_args(flags, "--json"))
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert set(data["invalid"]) == {"frequency", "current_l2"}
    assert "frequency_hz" not in data["values"] and data["values"]["current_l1_a"] == 12.345
    result = await invoke(*probe_args(flags))
    assert "Values read but not usable:" in result.stdout
    assert "frequency: not a finite number" in result.stdout


async def test_probe_names_the_registers_the_meter_refuses(meter: Start, tmp_path: Path) -> None:
    """A profile whose map does not fit: only the registers outside the meter's map fail."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (default_profiles_dir() / "eastron-sdm630.toml").read_text()
    text = text.replace('id = "eastron-sdm630"', 'id = "sdm630-variant"')
    text = text.replace("energy_export = { address = 0x004A", "energy_export = { address = 0x0050")
    text = text.replace(
        'frequency = { address = 0x0046, type = "float32"',
        'frequency = { address = 0x0000, function_code = 3, type = "float32"',
    )
    (profiles / "sdm630-variant.toml").write_text(text)
    _, flags = await meter("tcp")
    args = [
        "meter",
        "probe",
        *flags,
        "--profile",
        "sdm630-variant",
        "--profiles-dir",
        str(profiles),
    ]
    result = await invoke(*args, "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    failed = {tuple(f["quantities"]): f for f in data["failed"]}
    assert set(failed) == {("energy_export",), ("frequency",)}
    assert failed[("energy_export",)]["registers"] == "FC4 0x0050+2"
    assert failed[("frequency",)]["registers"] == "FC3 0x0000+2"
    assert all(f["error"] == "exception 2 (illegal data address)" for f in failed.values())
    assert all(f["kind"] == "exception" for f in failed.values())
    assert data["values"]["voltage_l1_v"] == 230.1 and data["values"]["power_w"] == 10020.45
    result = await invoke(*args)
    assert "the profile's register map does not fit this meter" in result.stdout


async def test_probe_of_a_silent_meter_is_a_timeout(meter: Start) -> None:
    sim, flags = await meter("tcp")
    sim.silent = True
    result = await invoke(*probe_args(flags, "--json"))
    assert result.exit_code == 1
    failures = json.loads(result.stdout)["failed"]
    assert len(failures) == 2  # both of the daemon's requests
    for failure in failures:
        assert failure["kind"] == "timeout" and failure["error"] == "no answer (timeout)"
        assert "unit id" in failure["hint"] and "edgegw meter scan" in failure["hint"]


async def test_probe_reports_crc_errors_on_rtu(meter: Start) -> None:
    sim, flags = await meter("rtu")
    sim.corrupt_crc = True
    result = await invoke(*probe_args(flags, "--json"))
    assert result.exit_code == 1
    failures = json.loads(result.stdout)["failed"]
    assert len(failures) == 2  # both of the daemon's requests
    for failure in failures:
        assert failure["kind"] == "frame"
        assert "CRC" in failure["error"]
        assert "termination" in failure["hint"]


async def test_probe_when_the_bus_cannot_be_reached(refused_port: int, tmp_path: Path) -> None:
    result = await invoke(*probe_args(["--tcp", f"127.0.0.1:{refused_port}"]))
    assert result.exit_code == 1
    assert "cannot connect" in result.output and "check the address and port" in result.output
    result = await invoke(*probe_args(["--rtu", str(tmp_path / "ttyUSB9")], "--json"))
    assert result.exit_code == 1
    assert "serial device does not exist" in json.loads(result.stdout)["error"]


async def test_probe_watch_prints_each_read(meter: Start) -> None:
    sim, flags = await meter("tcp")
    result = await invoke(*probe_args(flags, "--watch", "--count", "3", "--interval", "0.1"))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if " kWh" in line]
    assert len(lines) == 3
    assert "230.1/229.8/231.4 V" in lines[0] and "P 10.02 kW" in lines[0]
    result = await invoke(
        *probe_args(flags, "--watch", "--count", "2", "--interval", "0.1", "--json")
    )
    reads = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(reads) == 2 and all(r["ok"] for r in reads)
    assert sim.requests >= 5


async def test_probe_the_configured_meter(meter: Start, tmp_path: Path) -> None:
    sim, _ = await meter("tcp", units={4: KNOWN})
    config = tmp_path / "edgegw.toml"
    config.write_text(
        f'[buses.main]\ntransport = "tcp"\nhost = "127.0.0.1"\nport = {sim.port}\n'
        '[[meters]]\nname = "grid"\nprofile = "eastron-sdm630"\nunit_id = 4\n'
    )
    result = await invoke("meter", "probe", "-c", str(config), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["unit_id"] == 4 and data["values"]["current_l3_a"] == 31.9
    result = await invoke("meter", "probe", "-c", str(config), "--meter", "other")
    assert result.exit_code == 2 and "configured meters: grid" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tcp", "h", "--rtu", "/dev/x", "-p", "eastron-sdm630"], "either --tcp or --rtu"),
        (["--tcp", "h"], "--profile is needed"),
        (["--tcp", "h", "-p", "nosuch"], "available: abb-b23"),
        (["--tcp", "h", "-p", "generic"], "template"),
        (["--tcp", "h:99999", "-p", "eastron-sdm630"], "not a TCP port"),
        (["--rtu", "/dev/x", "-p", "eastron-sdm630", "--baudrate", "1234"], "baudrate 1234"),
    ],
)
def test_probe_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["meter", "probe", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


# --------------------------------------------------------------------------------------------
# scan
# --------------------------------------------------------------------------------------------


async def test_scan_tcp_finds_the_units(meter: Start) -> None:
    sim, flags = await meter("tcp", units={1: KNOWN, 3: KNOWN})
    sim.units[3].fail_with(2)  # there, though its register map differs: still found
    result = await invoke(
        "meter", "scan", *flags, "--units", "1-5", "--profile", "eastron-sdm630", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(f["unit_id"], f["answer"]) for f in data["found"]] == [
        (1, "registers"),
        (3, "exception 2 (illegal data address)"),
    ]
    assert (
        data["next"] == f"edgegw meter probe --tcp {flags[1]} --unit-id 1 --profile eastron-sdm630"
    )
    result = await invoke("meter", "scan", *flags, "--units", "1-5")
    assert "found unit 1 at" in result.output and "edgegw meter probe --tcp" in result.stdout


async def test_scan_rtu_tries_serial_settings_and_stops_at_the_first_hit(meter: Start) -> None:
    _, flags = await meter("rtu", units={3: KNOWN})
    result = await invoke(
        "meter",
        "scan",
        *flags,
        "--units",
        "1-4",
        "--baudrates",
        "19200,9600",
        "--parity",
        "N,E",
        "--timeout",
        "0.1",
    )
    assert result.exit_code == 0, result.output
    assert "Trying 19200 8N1" in result.output and "Trying 19200 8E1" not in result.output
    # Without --profile it reads holding register 0, which an SDM630 refuses: still found.
    answer = "exception 2 (illegal data address)"
    assert f"found unit 3 at 19200 8N1: answered with {answer}" in result.output
    assert f"unit 3 at 19200 8N1 ({answer})" in result.stdout
    next_step = f"--rtu {flags[1]} --baudrate 19200 --parity N --stopbits 1 --unit-id 3"
    assert next_step in result.stdout


async def test_scan_with_nothing_there(meter: Start) -> None:
    _, flags = await meter("tcp")
    result = await invoke("meter", "scan", *flags, "--units", "7-9", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["found"] == [] and data["tried"] == [flags[1]]
    result = await invoke("meter", "scan", *flags, "--units", "7-9")
    assert "Nothing answered" in result.stdout and "A/B wires" in result.stdout


async def test_scan_of_a_missing_device(tmp_path: Path) -> None:
    result = await invoke("meter", "scan", "--rtu", str(tmp_path / "ttyUSB9"), "--units", "1")
    assert result.exit_code == 1
    assert "serial device does not exist" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--tcp HOST[:PORT] or --rtu DEVICE"),
        (["--tcp", "h", "--units", "5-1"], "low to high"),
        (["--tcp", "h", "--units", "x"], "not a unit id"),
        (["--rtu", "/dev/x", "--baudrates", "1000"], "not a standard"),
        (["--rtu", "/dev/x", "--parity", "X"], "use N, E or O"),
    ],
)
def test_scan_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["meter", "scan", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_parsers() -> None:
    assert parse_units("1-3, 7,2") == [1, 2, 3, 7]
    assert parse_host_port("10.0.0.5") == ("10.0.0.5", 502)
    assert parse_host_port("[::1]:5020") == ("::1", 5020)
    assert auto_timeout(9600) == pytest.approx(0.102)
    assert auto_timeout(1200) > auto_timeout(115200)


# --------------------------------------------------------------------------------------------
# Issue 20: one read path, a server answering every unit, serial settings a port cannot do
# --------------------------------------------------------------------------------------------


async def test_probe_says_what_the_daemon_sends_and_splits_like_it(meter: Start) -> None:
    sim, flags = await meter("tcp")
    sim.max_read_registers = 20  # a meter taking fewer registers than its profile says
    result = await invoke(*probe_args(flags, "--json"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] and data["failed"] == []
    assert data["splits"] and "exception 3 (illegal data value)" in data["splits"][0]
    assert "max_read_registers" in data["advice"]
    sizes = [int(request.rsplit("+", 1)[1]) for request in data["requests"]]
    assert sizes and max(sizes) <= 20
    text = await invoke(*probe_args(flags))
    assert "The gateway reads this meter in" in text.stdout
    assert "the gateway splits them the same way" in text.stdout


async def test_probe_fails_when_a_register_is_refused_on_its_own(meter: Start) -> None:
    sim, flags = await meter("tcp")
    sim.undefined_registers = {0x0048}  # energy_import: the daemon can never read this meter
    result = await invoke(*probe_args(flags, "--json"))
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert not data["ok"]
    assert [f["quantities"] for f in data["failed"]] == [["energy_import"]]


async def test_scan_tcp_of_a_device_answering_every_unit_says_so(meter: Start) -> None:
    sim = SimMeter(live=False, answers_every_unit=True)
    async with sim:
        flags = ["--tcp", f"127.0.0.1:{sim.port}"]
        result = await invoke("meter", "scan", *flags, "--units", "1-20", "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["every_unit"] is True
        assert [f["unit_id"] for f in data["found"]] == [1]
        text = await invoke("meter", "scan", *flags, "--units", "1-20")
        assert "answers every unit id" in text.stdout
        assert "unit 2 " not in text.stdout


async def test_serial_settings_the_port_cannot_do_are_a_clear_error(meter: Start) -> None:
    _, flags = await meter("rtu")  # a pty: parity with 2 stop bits is refused by termios
    result = await invoke(*probe_args(flags, "--parity", "E", "--stopbits", "2"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "termios" not in result.output
    assert "refuses these settings" in result.output
    result = await invoke(
        "meter", "scan", *flags, "--units", "1", "--baudrates", "9600",
        "--parity", "E", "--stopbits", "2",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "refuses these settings" in result.output and "Traceback" not in result.output
    # Among several settings, the impossible ones are skipped and the scan goes on.
    result = await invoke(
        "meter", "scan", *flags, "--units", "1", "--baudrates", "9600",
        "--parity", "E,N", "--stopbits", "2,1", "--timeout", "0.3", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [f["unit_id"] for f in data["found"]] == [1]
    assert data["skipped"]


async def test_probe_and_scan_rtu_over_tcp() -> None:
    sim = SimMeter(unit_id=2, reading=KNOWN, live=False, transport="rtu-over-tcp")
    async with sim:
        flags = ["--tcp", f"127.0.0.1:{sim.port}", "--rtu-over-tcp"]
        result = await invoke(*probe_args(flags, "--unit-id", "2", "--json"))
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["ok"] and data["bus"].endswith("(RTU over TCP)")
        assert data["values"]["current_l1_a"] == pytest.approx(12.345)
        result = await invoke(
            "meter", "scan", *flags, "--units", "1-3", "--timeout", "0.2", "--json"
        )
        assert result.exit_code == 0, result.output
        scan = json.loads(result.stdout)
        assert [f["unit_id"] for f in scan["found"]] == [2]
        assert "--rtu-over-tcp" in scan["next"]
    result = await invoke(*probe_args(["--rtu-over-tcp"]))
    assert result.exit_code == 2 and "goes with --tcp" in result.output
