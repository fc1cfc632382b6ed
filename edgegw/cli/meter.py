"""``edgegw meter profiles | probe | scan``: find and read the site's meter on the wire.

On site the installer needs three answers before load capping can be trusted: which register
map fits the meter (``profiles``), whether the meter answers with sensible values
(``probe``: per-phase voltage, current and power, totals, and for every register that failed
whether it was silence, a Modbus exception or a garbled frame, because each points at a
different fault), and, when the meter's address or serial settings are unknown, where it is
(``scan``: unit ids, and on RS-485 every baud rate and parity).

The bus code is :mod:`edgegw.energy.meters` (:class:`~edgegw.energy.meters.ModbusBus`). The
probe reads with the daemon's own request plan (:class:`~edgegw.energy.meters.ReadPlan`): the
same block sizes, and the same split of a block the meter refuses, so it passes exactly when
the daemon will read the meter, and says which requests the daemon will send. It goes on past
a failing block so that one failing register does not hide the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import typer
from pydantic import ValidationError

from edgegw.cli.completion import complete_meter, complete_meter_profile
from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    emit,
    fail,
    load_config_or_fail,
    note,
    validation_problems,
)
from edgegw.config import BusConfig
from edgegw.energy.meters import (
    MeterConfigError,
    ModbusBus,
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusTimeout,
    ReadPlan,
    describe_block,
    describe_bus,
    implausible,
)
from edgegw.energy.registers import (
    BlockRead,
    MeterProfile,
    Quantity,
    Reading,
    decode,
    plan_reads,
)
from edgegw.hardware_catalogue import HardwareCatalogue, HardwareError

meter_app = typer.Typer(
    help="Find, identify and read the site's electricity meter (Modbus TCP or RTU).",
    no_args_is_help=True,
)

BAUDRATES: Final = (9600, 19200, 38400, 115200, 57600, 4800, 2400, 1200)
"""Scan order: the common factory settings first."""
PARITIES: Final = ("N", "E", "O")
_EVERY_UNIT_MIN: Final = 3
"""A TCP scan of at least this many unit ids in which every one answered found one device
that ignores the unit id, not that many meters."""
GATEWAY_NO_TARGET: Final = frozenset({10, 11})
"""Exceptions a Modbus TCP gateway sends for a unit that is not on its serial side."""

HINTS: Final = {
    "timeout": (
        "no answer: check the unit id (`edgegw meter scan` finds it), the baud rate and "
        "parity, the A/B wires (some makers label them the other way round) and that the "
        "meter is powered"
    ),
    "exception": (
        "the meter answered but refused the register: the profile's register map does not "
        "fit this meter (another model or firmware?); see `edgegw meter profiles`"
    ),
    "frame": (
        "garbled answer (CRC or framing error): check RS-485 termination and biasing, the "
        "baud rate and parity, and that no second master talks on the line"
    ),
    "connection": (
        "cannot reach the bus: check the address and port (TCP), or the serial device, "
        "its cable and permissions (the user must be in the dialout group)"
    ),
}

ProgressFn = Callable[[str], None]

BaudrateOption = Annotated[int | None, typer.Option(help="RTU baud rate (default: profile's).")]
StopbitsOption = Annotated[int | None, typer.Option(help="RTU stop bits 1 or 2.")]
ProfilesDirOption = Annotated[
    Path | None,
    typer.Option(
        help="Only the profiles in this directory (default: the shipped ones and the site's "
        "<hardware_dir>/meters)."
    ),
]
VerboseOption = Annotated[bool, typer.Option(help="Show the Modbus library's debug log.")]
RtuOverTcpOption = Annotated[
    bool,
    typer.Option(
        "--rtu-over-tcp",
        help="With --tcp: the address is a transparent RS-485-to-Ethernet converter; send "
        "RTU frames (unit id and CRC) instead of Modbus TCP.",
    ),
]


# --------------------------------------------------------------------------------------------
# Small parsers
# --------------------------------------------------------------------------------------------


def parse_host_port(text: str, default_port: int = 502) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` -> ``(host, port)``."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"{text!r} has no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{port_text!r} is not a TCP port (1-65535)")
    return host, int(port_text)


def parse_units(text: str) -> list[int]:
    """``"1-247"``, ``"1,3,10-12"`` -> the unit ids, in order, each once."""
    units: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        first, sep, last = part.partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            raise ValueError(f"{part!r} is not a unit id or a range like 1-247")
        low, high = int(first), int(last) if sep else int(first)
        if not 0 <= low <= high <= 247:
            raise ValueError(f"{part!r}: unit ids go from 0 to 247, low to high")
        units.extend(range(low, high + 1))
    if not units:
        raise ValueError("no unit id given")
    return list(dict.fromkeys(units))


def _csv(text: str) -> list[str]:
    return [p for p in text.replace(" ", "").split(",") if p]


def profile_id(name: str) -> str:
    """A meter profile's id as people type it: any case, ``_`` for ``-``, with ``.toml``."""
    return name.strip().lower().replace("_", "-").removesuffix(".toml")


def _catalogue(directory: Path | None, config: Path) -> HardwareCatalogue:
    """``--profiles-dir`` alone, else the site's catalogue (its configuration names it)."""
    if directory is not None:
        return HardwareCatalogue.of_folder("meters", directory)
    return HardwareCatalogue.for_config_file(config)


def _resolve_profile(name: str, catalogue: HardwareCatalogue, json_mode: bool) -> MeterProfile:
    try:
        return catalogue.meter_profile(profile_id(name))
    except HardwareError as exc:
        fail(str(exc), EXIT_USAGE, "`edgegw meter profiles` lists them", json_mode=json_mode)


@contextlib.contextmanager
def _quiet_logs(verbose: bool) -> Iterator[None]:
    """Keep the bus's own log lines off the terminal: the command reports every failure."""
    names = ("edgegw.energy.meters", "pymodbus")
    if verbose:
        logging.basicConfig(level=logging.DEBUG)
        yield
        return
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


# --------------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------------


def _profile_row(profile: MeterProfile) -> dict[str, Any]:
    serial = profile.serial
    tcp = profile.tcp
    return {
        "id": profile.id,
        "name": profile.name,
        "products": list(profile.products),
        "template": profile.template,
        "transports": [t for t, d in (("rtu", serial), ("tcp", tcp)) if d is not None],
        "serial": None
        if serial is None
        else {
            "unit_id": serial.unit_id,
            "baudrate": serial.baudrate,
            "parity": serial.parity,
            "stopbits": serial.stopbits,
            "bytesize": serial.bytesize,
            "confirmed": serial.confirmed,
        },
        "tcp": None if tcp is None else {"port": tcp.port, "unit_id": tcp.unit_id},
        "quantities": [q.value for q in profile.quantities],
    }


def _render_profiles(data: dict[str, Any]) -> str:
    lines = [f"Meter profiles in {data['directory']}:"]
    for row in data["profiles"]:
        template = "  (template: copy it for a new meter, not usable as is)" * row["template"]
        site = "  (site)" * row.get("site", False)
        lines.append(f"  {row['id']:<22} {row['name']}{site}{template}")
        others = [p for p in row["products"] if p != row["name"]]
        if others:
            lines.append(f"  {'':<22} products: {', '.join(others)}")
        serial = row["serial"]
        if serial is not None:
            unsure = "" if serial["confirmed"] else " (factory default not confirmed)"
            lines.append(
                f"  {'':<22} RTU: unit {serial['unit_id']}, {serial['baudrate']} "
                f"{serial['bytesize']}{serial['parity']}{serial['stopbits']}{unsure}"
            )
        if row["tcp"] is not None:
            lines.append(f"  {'':<22} TCP: port {row['tcp']['port']}, unit {row['tcp']['unit_id']}")
    for broken in data["broken"]:
        lines.append(f"  BROKEN {broken['file']}:")
        lines.extend(f"      {problem}" for problem in broken["problems"])
    lines.append(
        "Use one with: edgegw meter probe --profile <id> --rtu /dev/ttyUSB0 (or --tcp host)"
    )
    return "\n".join(lines)


@meter_app.command("profiles")
def profiles(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Only the profiles in this directory (default: the shipped ones and the "
            "site's <hardware_dir>/meters).",
        ),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """List the meter profiles (register maps) and each meter's factory serial settings.

    A profile in the site's folder (``[daemon] hardware_dir``, default /etc/edgegw/hardware)
    replaces the shipped one of the same name and is marked "site".
    """
    if directory is not None and not directory.is_dir():
        fail(
            f"{directory} is not a directory of meter profiles",
            EXIT_USAGE,
            "give --dir a directory of <id>.toml profiles, or leave it out",
            json_mode=as_json,
        )
    catalogue = _catalogue(directory, config)
    try:
        loaded, problems = catalogue.meter_profiles()
        files = catalogue.files("meters")
    except HardwareError as exc:
        fail(str(exc), EXIT_FAILURE, json_mode=as_json)
    rows = [{**_profile_row(profile), "site": files[name].site} for name, profile in loaded.items()]
    broken = [{"file": file, "problems": lines} for file, lines in problems.items()]
    data = {
        "ok": not broken,
        "directory": catalogue.describe("meters"),
        "profiles": rows,
        "broken": broken,
    }
    emit(data, as_json, _render_profiles)
    if broken:
        raise typer.Exit(EXIT_FAILURE)


# --------------------------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterFailure:
    """Registers that could not be read, and why."""

    quantities: tuple[Quantity, ...]
    where: str
    kind: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "quantities": [q.value for q in self.quantities],
            "registers": self.where,
            "kind": self.kind,
            "error": self.message,
            "hint": HINTS.get(self.kind, ""),
        }


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One read of every register of a profile, with what failed.

    ``requests`` are the requests the daemon will send for this meter (after any split),
    ``splits`` the blocks the meter refused and how they were split, ``advice`` the profile
    change that would avoid the split.
    """

    reading: Reading
    failures: tuple[RegisterFailure, ...] = ()
    invalid: dict[Quantity, str] = field(default_factory=dict)
    seconds: float = 0.0
    requests: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    advice: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and not self.invalid


def _failure(block: BlockRead, exc: ModbusError) -> RegisterFailure:
    message = str(exc)
    if isinstance(exc, ModbusExceptionResponse):
        message = f"exception {exc.code} ({exc.code_name})"
    elif isinstance(exc, ModbusTimeout):
        message = "no answer (timeout)"
    elif isinstance(exc, ModbusFrameError):
        message = f"garbled answer: {str(exc).split(': ', 1)[-1]}"
    return RegisterFailure(block.quantities, describe_block(block), exc.kind, message)


async def probe_meter(
    bus: ModbusBus, profile: MeterProfile, unit_id: int, plan: ReadPlan | None = None
) -> ProbeResult:
    """Read every block of ``profile`` once, as the daemon does; a failed block does not
    stop the others.

    The requests are the daemon's (:class:`~edgegw.energy.meters.ReadPlan`, or ``plan`` to
    keep what an earlier read learnt): a block refused with exception 2 or 3 is split as the
    daemon splits it, and a value the meter refuses on its own fails the probe, as it fails
    every poll of the daemon. A connection failure (no bus at all) raises
    :class:`~edgegw.energy.meters.ModbusConnectionError`.
    """
    started = time.perf_counter()
    plan = plan if plan is not None else ReadPlan(profile)
    read = await bus.read_plan(unit_id, plan, keep_going=True)
    failures = [_failure(block, exc) for block, exc in read.failures]
    reading = decode(profile, read.words, strict=False)
    problems = {**reading.invalid, **implausible(reading)}
    if problems:
        values = {q: v for q, v in reading.values().items() if q not in problems}
        reading = Reading.from_values(values, invalid=problems)
    return ProbeResult(
        reading,
        tuple(failures),
        problems,
        time.perf_counter() - started,
        requests=tuple(describe_block(block) for block in plan.blocks),
        splits=tuple(str(split) for split in plan.splits),
        advice=plan.advice(),
    )


def _fmt(value: float | None, unit: str, scale: float = 1.0, digits: int = 1) -> str:
    return "—" if value is None else f"{value / scale:.{digits}f} {unit}"


def _probe_dict(
    result: ProbeResult, profile: MeterProfile, unit_id: int, bus: BusConfig
) -> dict[str, Any]:
    values = result.reading.values()
    return {
        "ok": result.ok,
        "at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "profile": profile.id,
        "unit_id": unit_id,
        "bus": describe_bus(bus),
        "seconds": round(result.seconds, 4),
        "values": {q.field_name: values[q] for q in profile.quantities if q in values},
        "offered": [q.value for q in profile.quantities],
        "failed": [f.as_dict() for f in result.failures],
        "invalid": {q.value: why for q, why in result.invalid.items()},
        "requests": list(result.requests),
        "splits": list(result.splits),
        "advice": result.advice,
    }


def _render_probe(data: dict[str, Any], profile: MeterProfile) -> str:
    v = data["values"]
    offered = set(data["offered"])

    def cell(key: str, unit: str, scale: float = 1.0, digits: int = 1) -> str:
        base = key.rsplit("_", 1)[0]
        if base not in offered:
            return "n/a"
        return _fmt(v.get(key), unit, scale, digits)

    lines = [
        f"{profile.id} ({profile.name}), unit {data['unit_id']} on {data['bus']}: "
        f"{len(v)} of {len(offered)} values in {data['seconds'] * 1000:.0f} ms",
    ]
    if v:
        lines += ["", f"{'':<10}{'L1':>12}{'L2':>12}{'L3':>12}"]
        for label, quantity, unit, scale, digits in (
            ("Voltage", "voltage", "V", 1.0, 1),
            ("Current", "current", "A", 1.0, 2),
            ("Power", "power", "kW", 1000.0, 2),
        ):
            cells = [
                cell(f"{quantity}_l{n}_{unit.lower()[-1]}", unit, scale, digits) for n in (1, 2, 3)
            ]
            lines.append(f"{label:<10}" + "".join(f"{c:>12}" for c in cells))
        lines += [
            "",
            f"Total power  {cell('power_w', 'kW', 1000.0, 2)}",
            f"Imported     {cell('energy_import_wh', 'kWh', 1000.0, 1)}",
            f"Exported     {cell('energy_export_wh', 'kWh', 1000.0, 1)}",
            f"Frequency    {cell('frequency_hz', 'Hz', 1.0, 2)}",
        ]
    requests = data.get("requests") or []
    if requests:
        lines += [
            "",
            f"The gateway reads this meter in {len(requests)} request(s): {', '.join(requests)}",
        ]
    if data.get("splits"):
        lines += ["Blocks the meter refused (the gateway splits them the same way):"]
        lines += [f"  {split}" for split in data["splits"]]
        if data.get("advice"):
            lines.append(f"  → {data['advice']}")
    if data["failed"]:
        lines += ["", "Registers that failed (the gateway cannot read this meter):"]
        for failure in data["failed"]:
            lines.append(
                f"  {_names(failure['quantities'])} [{failure['registers']}]: "
                f"{failure['kind']}: {failure['error']}"
            )
        for kind in dict.fromkeys(f["kind"] for f in data["failed"]):
            lines.append(f"  → {HINTS.get(kind, 'see the error above')}")
    if data["invalid"]:
        lines += ["", "Values read but not usable:"]
        lines += [f"  {q}: {why}" for q, why in data["invalid"].items()]
        lines.append("  → the gateway would reject these readings; check the profile and meter")
    if data["ok"]:
        lines += ["", "OK: compare these values with the meter's display."]
    return "\n".join(lines)


def _names(quantities: Sequence[str]) -> str:
    if not quantities:
        return "(scale factor)"
    if len(quantities) <= 4:
        return ", ".join(quantities)
    return f"{len(quantities)} values ({quantities[0]} ... {quantities[-1]})"


def _watch_line(data: dict[str, Any]) -> str:
    v = data["values"]

    def trio(prefix: str, unit: str, digits: int) -> str:
        parts = [v.get(f"{prefix}_l{n}_{unit.lower()}") for n in (1, 2, 3)]
        return "/".join("—" if p is None else f"{p:.{digits}f}" for p in parts) + f" {unit}"

    power = v.get("power_w")
    energy = v.get("energy_import_wh")
    line = (
        f"{data['at'][11:19]}  {trio('voltage', 'V', 1)}  {trio('current', 'A', 2)}  "
        f"P {'—' if power is None else f'{power / 1000:.2f}'} kW  "
        f"E {'—' if energy is None else f'{energy / 1000:.1f}'} kWh"
    )
    problems = [f"{', '.join(f['quantities'])}: {f['kind']}" for f in data["failed"]]
    problems += [f"{q}: invalid" for q in data["invalid"]]
    if problems:
        line += "  FAIL " + "; ".join(problems)
    return line


@dataclass(frozen=True, slots=True)
class _Target:
    bus: BusConfig
    profile: MeterProfile
    unit_id: int


def _target_from_flags(
    tcp: str | None,
    rtu: str | None,
    profile: MeterProfile,
    *,
    unit_id: int | None,
    serial: dict[str, Any],
    timeout: float,
    json_mode: bool,
    rtu_over_tcp: bool = False,
) -> _Target:
    if tcp is not None and rtu_over_tcp:
        try:
            host, port = parse_host_port(tcp)
        except ValueError as exc:
            fail(f"--tcp: {exc}", EXIT_USAGE, "write host or host:port", json_mode=json_mode)
        settings: dict[str, Any] = {"transport": "rtu-over-tcp", "host": host, "port": port}
        default_unit = profile.serial.unit_id if profile.serial else 1
    elif tcp is not None:
        try:
            host, port = parse_host_port(tcp, profile.tcp.port if profile.tcp else 502)
        except ValueError as exc:
            fail(f"--tcp: {exc}", EXIT_USAGE, "write host or host:port", json_mode=json_mode)
        settings = {"transport": "tcp", "host": host, "port": port}
        default_unit = profile.tcp.unit_id if profile.tcp else 1
    else:
        defaults = profile.serial
        settings = {
            "transport": "rtu",
            "device": rtu,
            "baudrate": serial.get("baudrate") or (defaults.baudrate if defaults else 9600),
            "parity": serial.get("parity") or (defaults.parity if defaults else "N"),
            "stopbits": serial.get("stopbits") or (defaults.stopbits if defaults else 1),
            "bytesize": defaults.bytesize if defaults else 8,
        }
        default_unit = defaults.unit_id if defaults else 1
    try:
        bus = BusConfig.model_validate({**settings, "timeout": timeout, "retries": 0})
    except ValidationError as exc:
        fail(f"bad bus settings: {validation_problems(exc)}", EXIT_USAGE, json_mode=json_mode)
    return _Target(bus, profile, default_unit if unit_id is None else unit_id)


def _target_from_config(
    config_path: Path,
    meter_name: str | None,
    profiles_dir: Path | None,
    unit_id: int | None,
    json_mode: bool,
) -> _Target:
    cfg = load_config_or_fail(config_path, json_mode=json_mode)
    if not cfg.meters:
        fail(
            f"{config_path} configures no meter",
            EXIT_CONFIG,
            "give --tcp HOST or --rtu DEVICE with --profile, or add a [[meters]] section "
            "(edgegw init writes one)",
            json_mode=json_mode,
        )
    if meter_name is None:
        site = [m for m in cfg.meters if m.role == "site"]
        meter = site[0] if site else cfg.meters[0]
    else:
        found = [m for m in cfg.meters if m.name == meter_name]
        if not found:
            names = ", ".join(m.name for m in cfg.meters)
            fail(
                f"no meter named {meter_name!r} in {config_path}",
                EXIT_USAGE,
                f"configured meters: {names}",
                json_mode=json_mode,
            )
        meter = found[0]
    bus = cfg.buses.get(meter.bus)
    if bus is None:
        fail(
            f"meter {meter.name!r} hangs on bus {meter.bus!r}, which is not configured",
            EXIT_CONFIG,
            f"check it with `edgegw config check {config_path}`",
            json_mode=json_mode,
        )
    catalogue = (
        HardwareCatalogue.of_folder("meters", profiles_dir)
        if profiles_dir is not None
        else HardwareCatalogue.for_config(cfg)
    )
    profile = _resolve_profile(meter.profile, catalogue, json_mode)
    return _Target(bus, profile, meter.unit_id if unit_id is None else unit_id)


async def _probe_loop(
    target: _Target,
    *,
    watch: bool,
    interval: float,
    count: int,
    on_result: Callable[[ProbeResult], None],
) -> None:
    bus = ModbusBus(target.bus, name="probe", reconnect_min_delay=0, reconnect_max_delay=0)
    plan = ReadPlan(target.profile)  # kept across --watch reads, as the daemon keeps it
    try:
        done = 0
        while True:
            try:
                result = await probe_meter(bus, target.profile, target.unit_id, plan)
            except ModbusConnectionError:
                if not watch:
                    raise
                result = ProbeResult(
                    Reading(),
                    (
                        RegisterFailure(
                            target.profile.quantities,
                            "all",
                            "connection",
                            str(bus.last_error or "not connected"),
                        ),
                    ),
                )
            on_result(result)
            done += 1
            if not watch or (count and done >= count):
                return
            await asyncio.sleep(interval)
    finally:
        await bus.close()


@meter_app.command("probe")
def probe(
    *,
    tcp: Annotated[
        str | None, typer.Option(help="Modbus TCP meter or gateway: HOST or HOST:PORT.")
    ] = None,
    rtu: Annotated[
        str | None, typer.Option(help="RS-485 serial device, e.g. /dev/ttyUSB0.")
    ] = None,
    profile_name: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="Meter profile id (see `edgegw meter profiles`).",
            autocompletion=complete_meter_profile,
        ),
    ] = None,
    unit_id: Annotated[
        int | None,
        typer.Option(
            "--unit-id", "-u", help="Modbus unit id (default: profile's).", min=0, max=247
        ),
    ] = None,
    baudrate: BaudrateOption = None,
    parity: Annotated[
        str | None, typer.Option(help="RTU parity N, E or O (default: profile's).")
    ] = None,
    stopbits: StopbitsOption = None,
    rtu_over_tcp: RtuOverTcpOption = False,
    timeout: Annotated[float, typer.Option(help="Answer timeout (s).", min=0.01, max=30)] = 1.0,
    meter: Annotated[
        str | None,
        typer.Option(
            help="Without --tcp/--rtu: the configured meter to read (default: site).",
            autocompletion=complete_meter,
        ),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Read again and again.")] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds between reads with --watch.", min=0.1)
    ] = 1.0,
    count: Annotated[
        int, typer.Option(help="With --watch: stop after this many reads (0 = Ctrl-C).", min=0)
    ] = 0,
    profiles_dir: ProfilesDirOption = None,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Read live values from a meter once (or with --watch) and say which registers failed.

    Give the meter with --tcp or --rtu and --profile, or leave them out to read the meter
    configured in the configuration file. Exits 1 if any register failed or any value is
    unusable.
    """
    if tcp is not None and rtu is not None:
        fail("give either --tcp or --rtu, not both", EXIT_USAGE, json_mode=as_json)
    if rtu_over_tcp and tcp is None:
        fail("--rtu-over-tcp goes with --tcp HOST[:PORT]", EXIT_USAGE, json_mode=as_json)
    if tcp is None and rtu is None:
        target = _target_from_config(config, meter, profiles_dir, unit_id, as_json)
        if timeout != 1.0:
            target = _Target(
                target.bus.model_copy(update={"timeout": timeout}), target.profile, target.unit_id
            )
    else:
        if profile_name is None:
            fail(
                "--profile is needed to read a meter",
                EXIT_USAGE,
                "`edgegw meter profiles` lists them, e.g. --profile eastron-sdm630",
                json_mode=as_json,
            )
        profile = _resolve_profile(profile_name, _catalogue(profiles_dir, config), as_json)
        serial = {"baudrate": baudrate, "parity": parity and parity.upper(), "stopbits": stopbits}
        target = _target_from_flags(
            tcp,
            rtu,
            profile,
            unit_id=unit_id,
            serial=serial,
            timeout=timeout,
            json_mode=as_json,
            rtu_over_tcp=rtu_over_tcp,
        )
    if target.profile.template:
        fail(
            f"profile {target.profile.id!r} is a template, not a real meter",
            EXIT_USAGE,
            "copy it to a new file and fill in your meter's registers (see hardware/README.md)",
            json_mode=as_json,
        )
    results: list[dict[str, Any]] = []

    def on_result(result: ProbeResult) -> None:
        data = _probe_dict(result, target.profile, target.unit_id, target.bus)
        results.append(data)
        if watch:
            if as_json:
                typer.echo(_json_line(data))
            else:
                typer.echo(_watch_line(data))

    if watch and not as_json:
        note(
            f"Reading {target.profile.id} unit {target.unit_id} on {describe_bus(target.bus)} "
            f"every {interval:g} s; Ctrl-C stops."
        )
    try:
        with _quiet_logs(verbose):
            asyncio.run(
                _probe_loop(
                    target, watch=watch, interval=interval, count=count, on_result=on_result
                )
            )
    except ModbusConnectionError as exc:
        fail(str(exc), EXIT_FAILURE, HINTS["connection"], json_mode=as_json)
    except MeterConfigError as exc:
        fail(str(exc), EXIT_USAGE, json_mode=as_json)
    except KeyboardInterrupt:
        note(f"stopped after {len(results)} read(s)")
    if not results:
        raise typer.Exit(EXIT_FAILURE)
    if not watch:
        emit(results[-1], as_json, lambda d: _render_probe(d, target.profile))
    if not results[-1]["ok"]:
        raise typer.Exit(EXIT_FAILURE)


def _json_line(data: dict[str, Any]) -> str:
    import json  # noqa: PLC0415

    return json.dumps(data, ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# scan
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SerialSetting:
    baudrate: int
    parity: Literal["N", "E", "O"]
    stopbits: Literal[1, 2]

    def __str__(self) -> str:
        return f"{self.baudrate} 8{self.parity}{self.stopbits}"


@dataclass(frozen=True, slots=True)
class ScanHit:
    unit_id: int
    setting: str
    answer: str
    """``registers`` (it answered the read) or ``exception N (name)`` (present, map differs)."""
    present: bool
    """False for a garbled answer: something is there, probably at other serial settings."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "setting": self.setting,
            "answer": self.answer,
            "present": self.present,
        }


def auto_timeout(baudrate: int | None) -> float:
    """How long to wait for a one-register answer: the frames' time on the wire, thrice, plus
    a meter's turnaround (TCP: a gateway's own timeout towards its serial side)."""
    if baudrate is None:
        return 1.0
    chars = 8 + 7  # request + answer of a one-register read
    return round(0.05 + 3 * chars * 11 / baudrate, 3)


async def scan_bus(
    bus_config: BusConfig,
    units: Sequence[int],
    block: BlockRead,
    *,
    setting: str,
    on_hit: Callable[[ScanHit], None],
    on_progress: Callable[[int, int], None] | None = None,
) -> list[ScanHit]:
    """Try ``block`` on every unit, once each, without retries; report who answered.

    A unit that answers registers or a Modbus exception of its own is there; a TCP gateway's
    "no path / no response" exceptions and silence mean it is not. A garbled answer is
    reported too (``present=False``): on RS-485 it usually means a device at other settings.
    A bus that cannot be opened raises :class:`~edgegw.energy.meters.ModbusConnectionError`.
    """
    bus = ModbusBus(
        bus_config.model_copy(update={"retries": 0}),
        name="scan",
        reconnect_min_delay=0,
        reconnect_max_delay=0,
    )
    hits: list[ScanHit] = []
    try:
        for index, unit_id in enumerate(units, 1):
            hit: ScanHit | None = None
            for attempt in (1, 2):
                try:
                    await bus.read_blocks(unit_id, [block])
                except ModbusConnectionError:
                    if attempt == 2 or index == 1:
                        raise
                    continue  # the link dropped (pymodbus closes TCP after silence): reopen
                except ModbusExceptionResponse as exc:
                    if exc.code not in GATEWAY_NO_TARGET:
                        hit = ScanHit(
                            unit_id, setting, f"exception {exc.code} ({exc.code_name})", True
                        )
                except ModbusFrameError as exc:
                    hit = ScanHit(unit_id, setting, f"garbled: {exc}", False)
                except ModbusTimeout:
                    pass
                else:
                    hit = ScanHit(unit_id, setting, "registers", True)
                break
            if hit is not None:
                hits.append(hit)
                on_hit(hit)
            if on_progress is not None:
                on_progress(index, len(units))
    finally:
        await bus.close()
    return hits


def _scan_settings(
    baudrates: str | None, parities: str, stopbits: str, profile: MeterProfile | None
) -> list[SerialSetting]:
    rates = [int(b) for b in _csv(baudrates)] if baudrates else list(BAUDRATES)
    pars = [p.upper() for p in _csv(parities)]
    stops = [int(s) for s in _csv(stopbits)]
    for rate in rates:
        if rate not in BAUDRATES:
            raise ValueError(f"{rate} is not a standard Modbus RTU baud rate")
    for par in pars:
        if par not in PARITIES:
            raise ValueError(f"parity {par!r}: use N, E or O")
    for stop in stops:
        if stop not in (1, 2):
            raise ValueError(f"stop bits {stop}: use 1 or 2")
    settings = [
        SerialSetting(rate, par, stop)  # type: ignore[arg-type]
        for rate in rates
        for par in pars
        for stop in stops
    ]
    if profile is not None and profile.serial is not None and not baudrates:
        first = SerialSetting(
            profile.serial.baudrate, profile.serial.parity, profile.serial.stopbits
        )
        settings = [first, *[s for s in settings if s != first]]
    return settings


@meter_app.command("scan")
def scan(
    *,
    tcp: Annotated[
        str | None, typer.Option(help="Modbus TCP gateway or meter: HOST or HOST:PORT.")
    ] = None,
    rtu: Annotated[str | None, typer.Option(help="RS-485 serial device to scan.")] = None,
    units: Annotated[str, typer.Option(help="Unit ids to try, e.g. 1-247 or 1,2,10-20.")] = "1-247",
    baudrates: Annotated[
        str | None,
        typer.Option(help="RTU baud rates to try, comma-separated (default: all standard ones)."),
    ] = None,
    parity: Annotated[str, typer.Option(help="RTU parities to try, e.g. N,E,O.")] = "N,E,O",
    stopbits: Annotated[str, typer.Option(help="RTU stop bits to try, e.g. 1 or 1,2.")] = "1",
    profile_name: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="Read this profile's first register (default: holding register 0).",
            autocompletion=complete_meter_profile,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="Answer timeout per unit (s; default: from the baud rate).", min=0.01),
    ] = None,
    all_settings: Annotated[
        bool,
        typer.Option("--all", help="RTU: keep trying serial settings after a meter was found."),
    ] = False,
    rtu_over_tcp: RtuOverTcpOption = False,
    profiles_dir: ProfilesDirOption = None,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
) -> None:
    """Find a meter whose unit id (and on RS-485, baud rate and parity) is unknown.

    Tries every unit id, once, at each serial setting in turn, and stops after the first
    setting at which something answered (--all to go on). A unit that answers, or refuses the
    register with an exception of its own, is there. Exits 1 if nothing answered.
    """
    if (tcp is None) == (rtu is None):
        fail(
            "give the bus to scan: --tcp HOST[:PORT] or --rtu DEVICE", EXIT_USAGE, json_mode=as_json
        )
    try:
        unit_ids = parse_units(units)
    except ValueError as exc:
        fail(f"--units: {exc}", EXIT_USAGE, json_mode=as_json)
    profile = (
        _resolve_profile(profile_name, _catalogue(profiles_dir, DEFAULT_CONFIG_PATH), as_json)
        if profile_name
        else None
    )
    block = plan_reads(profile, [profile.quantities[0]])[0] if profile else BlockRead(3, 0, 1, ())
    plans: list[tuple[str, BusConfig]] = []
    settings: list[SerialSetting] = []
    try:
        if rtu_over_tcp and tcp is None:
            raise ValueError("--rtu-over-tcp goes with --tcp HOST[:PORT]")
        if tcp is not None:
            host, port = parse_host_port(tcp)
            bus = BusConfig(
                transport="rtu-over-tcp" if rtu_over_tcp else "tcp",
                host=host,
                port=port,
                timeout=timeout or 1.0,
            )
            plans.append((describe_bus(bus), bus))
        else:
            settings = _scan_settings(baudrates, parity, stopbits, profile)
            for s in settings:
                bus = BusConfig(
                    transport="rtu",
                    device=rtu,
                    baudrate=s.baudrate,
                    parity=s.parity,
                    stopbits=s.stopbits,
                    timeout=timeout or auto_timeout(s.baudrate),
                )
                plans.append((str(s), bus))
    except (ValueError, ValidationError) as exc:
        fail(f"bad scan settings: {exc}", EXIT_USAGE, json_mode=as_json)

    tty = sys.stderr.isatty()

    def say(message: str) -> None:
        if not as_json:
            note(message)

    def on_hit(hit: ScanHit) -> None:
        if tty and not as_json:
            typer.echo("\r\033[K", err=True, nl=False)
        if hit.present:
            say(f"  found unit {hit.unit_id} at {hit.setting}: answered with {hit.answer}")
        else:
            say(f"  unit {hit.unit_id} at {hit.setting}: {hit.answer}")

    def on_progress(done: int, total: int) -> None:
        if as_json:
            return
        if tty:
            typer.echo(f"\r  unit {done}/{total}", err=True, nl=False)
        elif done % 50 == 0 and done != total:
            note(f"  ... {done}/{total} units tried")

    hits: list[ScanHit] = []
    tried: list[str] = []
    refused: list[str] = []
    started = time.perf_counter()
    where = tcp if tcp is not None else rtu
    say(f"Scanning {len(unit_ids)} unit id(s) on {where} at {len(plans)} setting(s); Ctrl-C stops.")

    async def run() -> None:
        for label, bus in plans:
            estimate = len(unit_ids) * bus.timeout
            say(f"Trying {label} (up to ~{max(1.0, estimate):.0f} s)")
            tried.append(label)
            try:
                found = await scan_bus(
                    bus, unit_ids, block, setting=label, on_hit=on_hit, on_progress=on_progress
                )
            except MeterConfigError as exc:
                if tcp is not None or len(plans) == 1:
                    raise
                refused.append(str(exc))
                say(f"  skipped {label}: the serial port cannot do it")
                continue
            if tty and not as_json:
                typer.echo("\r\033[K", err=True, nl=False)
            hits.extend(found)
            if any(h.present for h in found) and not all_settings:
                return

    interrupted = False
    try:
        with _quiet_logs(verbose):
            asyncio.run(run())
    except ModbusConnectionError as exc:
        fail(str(exc), EXIT_FAILURE, HINTS["connection"], json_mode=as_json)
    except MeterConfigError as exc:
        fail(
            str(exc),
            EXIT_USAGE,
            "leave that setting out of --parity/--stopbits/--baudrates",
            json_mode=as_json,
        )
    except KeyboardInterrupt:
        interrupted = True
        say("stopped")
    if refused and len(refused) == len(tried) and not hits:
        fail(
            refused[0],
            EXIT_USAGE,
            "the port could do none of the settings tried; leave them out of "
            "--parity/--stopbits/--baudrates",
            json_mode=as_json,
        )
    present = [h for h in hits if h.present]
    every_unit = (
        tcp is not None and len(unit_ids) >= _EVERY_UNIT_MIN and len(present) == len(unit_ids)
    )
    if every_unit:
        # One device answering for any unit id, not that many meters.
        present = present[:1]
    next_step = None
    if present:
        first = present[0]
        if tcp is not None:
            where_flags = f"--tcp {tcp}" + " --rtu-over-tcp" * rtu_over_tcp
        else:
            setting = next(s for s in settings if str(s) == first.setting)
            where_flags = (
                f"--rtu {rtu} --baudrate {setting.baudrate} --parity {setting.parity} "
                f"--stopbits {setting.stopbits}"
            )
        next_step = (
            f"edgegw meter probe {where_flags} --unit-id {first.unit_id} "
            f"--profile {profile.id if profile else '<id>'}"
        )
    data = {
        "ok": bool(present),
        "bus": where,
        "found": [h.as_dict() for h in present],
        "every_unit": every_unit,
        "skipped": refused,
        "garbled": [h.as_dict() for h in hits if not h.present],
        "tried": tried,
        "interrupted": interrupted,
        "next": next_step,
        "seconds": round(time.perf_counter() - started, 2),
    }
    emit(data, as_json, _render_scan)
    if not present:
        raise typer.Exit(EXIT_FAILURE)


def _render_scan(data: dict[str, Any]) -> str:
    lines: list[str] = []
    if data.get("every_unit"):
        lines.append(
            f"The device at {data['bus']} answers every unit id it was asked for: it ignores "
            "the unit id (a Modbus TCP meter does, and some gateways answer for absent units). "
            "That is one device, not one per id: use the unit id its manual gives "
            f"(unit {data['found'][0]['unit_id']} answers too)."
        )
        lines.append(f"Next, read it and compare with the meter's display:\n  {data['next']}")
        return "\n".join(lines)
    if data["found"]:
        lines.append(f"Found on {data['bus']}:")
        for hit in data["found"]:
            lines.append(f"  unit {hit['unit_id']} at {hit['setting']} ({hit['answer']})")
        lines.append(f"Next, read it and compare with the meter's display:\n  {data['next']}")
        return "\n".join(lines)
    lines.append(f"Nothing answered on {data['bus']} (tried {', '.join(data['tried'])}).")
    if data["garbled"]:
        lines.append(
            "Garbled answers came back: a device is there, probably at another baud rate or "
            "parity; try --all, other --baudrates or --stopbits 1,2."
        )
    lines.append(
        "Check: the meter is powered; A/B wires (swap them once: makers label them "
        "differently); termination at both ends of the line; the unit id range; for TCP, "
        "the gateway's address and port."
    )
    return "\n".join(lines)
