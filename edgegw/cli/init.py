"""``edgegw init``: write a site's first configuration, by questions or by flags.

An installer on site should not have to learn the configuration format to commission a
gateway. :func:`init` asks for what differs from site to site — the chargers' identities,
the cloud URL and each charger's cloud password, the main fuse, the meter and how it is
wired — or takes it all from flags with ``--yes`` for scripted installs. Each answer is
checked as it is given (with the same validators the configuration uses), and the finished
file is validated as a whole before anything is written.

The file is commented, so the next person can read it, and holds no secret: cloud passwords
go to one file per charger (mode 0600, referenced as ``{ file = "..." }``), charger
passwords are stored only as hashes, and generated charger passwords go to a 0600 file for
the installer to type into the chargers. Nothing secret is ever printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import string
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

import typer
from pydantic import ValidationError

from edgegw.auth.passwords import hash_password
from edgegw.cli.completion import complete_meter_profile
from edgegw.cli.meter import BaudrateOption, StopbitsOption, profile_id
from edgegw.cli.meter import parse_host_port as meter_address
from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    emit,
    fail,
    validation_problems,
)
from edgegw.config import (
    BusConfig,
    ChargerConfig,
    CloudConfig,
    ConfigError,
    SiteConfig,
    load_config,
    parse_config,
)
from edgegw.energy.registers import MeterProfile
from edgegw.hardware_catalogue import HardwareCatalogue, HardwareError

CONFIG_MODE: Final = 0o640
SECRET_MODE: Final = 0o600
SECRETS_DIR_MODE: Final = 0o700
SERVICE_USER: Final = "edgegw"
"""The daemon's user (systemd/edgegw.service); secret files are given to it when run as root."""
DEFAULT_PROFILE: Final = "eastron-sdm630"
GENERATED_PASSWORDS: Final = "charger-passwords.txt"
_PASSWORD_ALPHABET: Final = string.ascii_letters + string.digits

T = TypeVar("T")


class InitError(ValueError):
    """An answer or flag cannot be used; the message says why and what is allowed."""


# --------------------------------------------------------------------------------------------
# The answers
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class MeterAnswers:
    profile: str
    transport: Literal["tcp", "rtu"]
    unit_id: int
    host: str | None = None
    port: int = 502
    device: str | None = None
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    def bus(self) -> BusConfig:
        if self.transport == "tcp":
            return BusConfig(transport="tcp", host=self.host, port=self.port)
        return BusConfig(
            transport="rtu",
            device=self.device,
            baudrate=self.baudrate,
            parity=self.parity,
            stopbits=self.stopbits,
        )

    def where(self) -> str:
        if self.transport == "tcp":
            return f"{self.host}:{self.port}"
        return f"{self.device} {self.baudrate} 8{self.parity}{self.stopbits}"


@dataclass(slots=True)
class SiteAnswers:
    """Everything ``init`` writes, secrets included (they never reach the config file)."""

    chargers: list[str] = field(default_factory=list)
    cloud_url: str | None = None
    ca_file: Path | None = None
    cloud_passwords: dict[str, str] = field(default_factory=dict, repr=False)
    charger_passwords: dict[str, str] = field(default_factory=dict, repr=False)
    generated: set[str] = field(default_factory=set)
    """Chargers whose password was generated (written to the generated-passwords file)."""
    site_limit: float | tuple[float, float, float] | None = None
    margin: float = 2.0
    fallback_ev: float | None = None
    meter_role: Literal["grid", "non_ev"] = "grid"
    """Does the meter measure the chargers too (grid), or only the building's other loads?"""
    max_current: float | None = None
    meter: MeterAnswers | None = None
    port: int = 9000
    unknown_cards: Literal["reject", "accept"] = "reject"


# --------------------------------------------------------------------------------------------
# Checking single answers (the configuration's own validators, one field at a time)
# --------------------------------------------------------------------------------------------


def check_charger_ids(text: str) -> list[str]:
    """``"CP1 CP2,CP3"`` -> ids, each a valid OCPP identity, no duplicates."""
    ids = [p for p in text.replace(",", " ").split() if p]
    seen: set[str] = set()
    for charger_id in ids:
        try:
            ChargerConfig(id=charger_id)
        except ValidationError as exc:
            raise InitError(f"charger id {charger_id!r}: {validation_problems(exc)}") from None
        if charger_id.lower() in seen:
            raise InitError(f"charger id {charger_id!r} is given twice")
        seen.add(charger_id.lower())
    return ids


def check_cloud_url(text: str) -> str:
    try:
        return CloudConfig(url=text.strip()).url
    except ValidationError as exc:
        raise InitError(f"cloud URL {text!r}: {validation_problems(exc)}") from None


def check_site_limit(text: str) -> float | tuple[float, float, float]:
    """``"63"`` or ``"63,63,40"`` (A per phase)."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InitError(f"site limit {text!r}: give amperes, e.g. 63 or 63,63,40") from None
    if len(values) == 1:
        limit: float | tuple[float, float, float] = values[0]
    elif len(values) == 3:
        limit = (values[0], values[1], values[2])
    else:
        raise InitError(f"site limit {text!r}: one value, or three (L1,L2,L3)")
    if min(values) <= 0:
        raise InitError("the site limit must be above 0 A on every phase")
    return limit


def check_site(
    limit: float | tuple[float, float, float], margin: float, fallback: float | None
) -> None:
    try:
        SiteConfig(limit_a=limit, margin_a=margin, fallback_ev_a=fallback)
    except ValidationError as exc:
        raise InitError(f"site: {validation_problems(exc)}") from None


def _catalogue(directory: Path | None) -> HardwareCatalogue:
    """``--profiles-dir`` alone, else the shipped profiles and the site's (the configuration
    being written keeps the default ``hardware_dir``)."""
    return (
        HardwareCatalogue()
        if directory is None
        else HardwareCatalogue.of_folder("meters", directory)
    )


def check_profile(name: str, directory: Path | None = None) -> MeterProfile:
    try:
        profile = _catalogue(directory).meter_profile(profile_id(name))
    except HardwareError as exc:
        raise InitError(str(exc)) from None
    if profile.template:
        raise InitError(f"meter profile {profile.id!r} is a template, not a real meter")
    return profile


def check_meter(meter: MeterAnswers) -> None:
    try:
        meter.bus()
    except ValidationError as exc:
        raise InitError(f"meter connection: {validation_problems(exc)}") from None
    if not 0 <= meter.unit_id <= 247 or (meter.transport == "rtu" and meter.unit_id == 0):
        raise InitError(f"meter unit id {meter.unit_id}: use 1..247")


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    try:
        return meter_address(text, default_port)
    except ValueError as exc:
        raise InitError(f"meter address: {exc}") from None


def read_password_file(source: str) -> dict[str, str]:
    """Lines ``ID=password`` (``#`` comments) from a file, or from stdin for ``-``: the form
    ``edgegw init --generate-charger-passwords`` writes its file in."""
    if source == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise InitError(f"cannot read {source}: {exc.strerror}") from None
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        charger_id, sep, password = line.partition("=")
        if not sep or not charger_id.strip() or not password:
            raise InitError(f"{source} line {number}: write ID=password")
        found[charger_id.strip()] = password
    return found


def generate_password() -> str:
    """20 letters and digits: valid as an OCPP 1.6 and 2.0.1 Basic-auth password."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(20))


# --------------------------------------------------------------------------------------------
# Rendering the file
# --------------------------------------------------------------------------------------------


def _q(value: str) -> str:
    """A TOML basic string (JSON's escapes are a subset of TOML's)."""
    return json.dumps(value)


def _num(value: float) -> str:
    return f"{value:g}" if value == int(value) else repr(value)


def _line(text: str, comment: str) -> str:
    return f"{text:<30}  # {comment}"


def secret_path(secrets_dir: Path, charger_id: str) -> Path:
    return secrets_dir / f"{charger_id}.cloud-password"


def render_config(answers: SiteAnswers, *, secrets_dir: Path, hashes: dict[str, str]) -> str:
    """The commented TOML text for ``answers``; secrets appear only as file references."""
    now = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    out = [
        f"# edgegw configuration, written by `edgegw init` on {now}.",
        "# Check it after every change:  edgegw config check <this file>",
        "# Every key is described in README.md (configuration reference).",
        "",
        "[server]",
        _line('host = "0.0.0.0"', "listen on every interface"),
        _line(f"port = {answers.port}", "chargers connect to ws://<gateway>:<port>/ocpp/<id>"),
        _line('path = "/ocpp"', "URL path before the charger id"),
        _line("allow_unknown_chargers = false", "true lets any identity in (testing only)"),
        "",
    ]
    if answers.cloud_url is not None:
        out += [
            "# The operator's cloud CSMS: each charger is relayed to <url>/<charger id>.",
            "[cloud]",
            f"url = {_q(answers.cloud_url)}",
        ]
        if answers.ca_file is not None:
            out.append(_line(f"ca_file = {_q(str(answers.ca_file))}", "the CSMS's private CA"))
        else:
            out.append(
                '# ca_file = "/etc/edgegw/cloud-ca.pem"   # only if the CSMS uses a private CA'
            )
        out.append("")
    else:
        out += ["# No [cloud] section: standalone site, the gateway is the chargers' CSMS.", ""]
    out += [
        "[store]",
        _line('path = "/var/lib/edgegw/edgegw.db"', "sessions, cards, outbox (SQLite)"),
        "",
        "[auth]",
        _line(
            f"unknown_cards = {_q(answers.unknown_cards)}",
            "cards nobody vouches for while offline: reject or accept",
        ),
        "",
        "[logging]",
        _line('level = "info"', "debug, info, warning or error"),
        "",
    ]
    if answers.site_limit is not None:
        limit = answers.site_limit
        limit_text = (
            _num(limit)
            if isinstance(limit, int | float)
            else "[" + ", ".join(_num(v) for v in limit) + "]"
        )
        out += [
            "# Load capping: the chargers together never draw more than the main fuse allows.",
            "[site]",
            _line(
                f"limit_a = {limit_text}", "main fuse per phase (A); [L1, L2, L3] if they differ"
            ),
            _line(f"margin_a = {_num(answers.margin)}", "kept free below the fuse (A)"),
            _line(
                f"meter_role = {_q(answers.meter_role)}",
                "the meter measures the chargers too"
                if answers.meter_role == "grid"
                else "the meter measures the building without the chargers",
            ),
        ]
        if answers.fallback_ev is not None:
            out.append(
                _line(
                    f"fallback_ev_a = {_num(answers.fallback_ev)}",
                    "all chargers together while the meter is lost (A)",
                )
            )
        else:
            out.append(
                "# fallback_ev_a = 16            # while the meter is lost; unset: pause all"
            )
        out.append("")
    meter = answers.meter
    if meter is not None:
        out += ["# The Modbus connection the meter hangs on.", "[buses.main]"]
        if meter.transport == "tcp":
            out += [
                _line('transport = "tcp"', "Modbus TCP (a meter or an RS-485 gateway)"),
                f"host = {_q(meter.host or '')}",
                f"port = {meter.port}",
            ]
        else:
            out += [
                _line('transport = "rtu"', "Modbus RTU on RS-485"),
                f"device = {_q(meter.device or '')}",
                f"baudrate = {meter.baudrate}",
                f"parity = {_q(meter.parity)}",
                f"stopbits = {meter.stopbits}",
            ]
        out += [
            "",
            "[[meters]]",
            'name = "site"',
            'bus = "main"',
            _line(f"profile = {_q(meter.profile)}", f"hardware/meters/{meter.profile}.toml"),
            f"unit_id = {meter.unit_id}",
            _line('role = "site"', "load capping follows this meter"),
            "",
        ]
    for charger_id in answers.chargers:
        out += ["[[chargers]]", f"id = {_q(charger_id)}"]
        if answers.max_current is not None:
            out.append(
                _line(f"max_current_a = {_num(answers.max_current)}", "its highest current (A)")
            )
        if charger_id in answers.cloud_passwords:
            ref = f"{{ file = {_q(str(secret_path(secrets_dir, charger_id)))} }}"
            out.append(_line(f"cloud_password = {ref}", "mode 0600"))
        if charger_id in hashes:
            out.append("# hash of the password it logs in with (`edgegw password-hash`)")
            out.append(f"password_hash = {_q(hashes[charger_id])}")
        out.append("")
    if not answers.chargers:
        out += ["# No chargers yet: add them with `edgegw chargers add ID`.", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------------------------


def _service_ids() -> tuple[int, int] | None:
    """uid and gid of the daemon's user, when we are root and it exists."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def write_file(path: Path, text: str, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Write ``text`` atomically with exactly ``mode`` (whatever the umask)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            if owner is not None:
                os.fchown(handle.fileno(), *owner)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# --------------------------------------------------------------------------------------------
# The wizard
# --------------------------------------------------------------------------------------------


def _ask(question: str, check: Callable[[str], T], default: str | None = None) -> T:
    """Ask until ``check`` accepts the answer; show why it did not."""
    while True:
        answer = typer.prompt(question, default=default, show_default=default not in (None, ""))
        try:
            return check(str(answer))
        except InitError as exc:
            typer.echo(f"  ✗ {exc}", err=True)


def _ask_secret(question: str) -> str:
    value = typer.prompt(
        question, default="", hide_input=True, confirmation_prompt=True, show_default=False
    )
    return str(value)


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def check(text: str) -> str:
        value = text.strip()
        for option in options:
            if value.lower() == option.lower():
                return option
        raise InitError(f"answer one of: {', '.join(options)}")

    return check


def _integer(low: int, high: int) -> Callable[[str], int]:
    def check(text: str) -> int:
        if not text.strip().isdigit() or not low <= int(text) <= high:
            raise InitError(f"give a whole number from {low} to {high}")
        return int(text)

    return check


def _amperes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InitError("give a number of amperes") from None
    if value < 0:
        raise InitError("amperes cannot be negative")
    return value


def _optional(check: Callable[[str], T]) -> Callable[[str], T | None]:
    def wrapped(text: str) -> T | None:
        return None if not text.strip() else check(text)

    return wrapped


def _list_profiles(directory: Path | None) -> str:
    try:
        loaded, _ = _catalogue(directory).meter_profiles()
    except HardwareError:
        return ""
    names = [f"{p.id} ({p.name})" for p in loaded.values() if not p.template]
    return "\n".join(f"    {n}" for n in names)


def _ask_meter(answers: SiteAnswers, flags: MeterFlags, profiles_dir: Path | None) -> None:
    if flags.profile is None:
        typer.echo("  Meter profiles:\n" + _list_profiles(profiles_dir))
    profile = (
        check_profile(flags.profile, profiles_dir)
        if flags.profile is not None
        else _ask(
            "Meter profile", lambda t: check_profile(t, profiles_dir), default=DEFAULT_PROFILE
        )
    )
    if flags.tcp is not None or flags.rtu is not None:
        transport: Literal["tcp", "rtu"] = "tcp" if flags.tcp is not None else "rtu"
    else:
        default = "rtu" if profile.serial is not None else "tcp"
        transport = (
            "tcp"
            if _ask("Connected over tcp or rtu (RS-485)", _choice(("tcp", "rtu")), default) == "tcp"
            else "rtu"
        )
    if transport == "tcp":
        default_port = profile.tcp.port if profile.tcp else 502
        host, port = (
            parse_host_port(flags.tcp, default_port)
            if flags.tcp is not None
            else _ask(
                "Meter or Modbus gateway address (host or host:port)",
                lambda t: parse_host_port(t, default_port),
            )
        )
        default_unit = profile.tcp.unit_id if profile.tcp else 1
        meter = MeterAnswers(profile.id, "tcp", default_unit, host=host, port=port)
    else:
        serial = profile.serial
        device = flags.rtu or _ask("Serial device", _nonempty, "/dev/ttyUSB0")
        baudrate = flags.baudrate or _ask(
            "Baud rate",
            _choice(tuple(str(b) for b in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200))),
            str(serial.baudrate if serial else 9600),
        )
        parity = flags.parity or _ask(
            "Parity (N, E or O)", _choice(("N", "E", "O")), serial.parity if serial else "N"
        )
        stopbits = flags.stopbits or _ask(
            "Stop bits", _choice(("1", "2")), str(serial.stopbits if serial else 1)
        )
        default_unit = serial.unit_id if serial else 1
        meter = MeterAnswers(
            profile.id,
            "rtu",
            default_unit,
            device=device,
            baudrate=int(baudrate),
            parity=parity,  # type: ignore[arg-type]
            stopbits=int(stopbits),  # type: ignore[arg-type]
        )
    meter.unit_id = (
        flags.unit_id
        if flags.unit_id is not None
        else _ask(
            "Meter unit id (Modbus address)",
            _integer(1 if transport == "rtu" else 0, 247),
            str(meter.unit_id),
        )
    )
    check_meter(meter)
    answers.meter = meter


def _nonempty(text: str) -> str:
    if not text.strip():
        raise InitError("an answer is needed")
    return text.strip()


@dataclass(slots=True)
class MeterFlags:
    profile: str | None = None
    tcp: str | None = None
    rtu: str | None = None
    unit_id: int | None = None
    baudrate: int | None = None
    parity: str | None = None
    stopbits: int | None = None

    @property
    def given(self) -> bool:
        return self.profile is not None or self.tcp is not None or self.rtu is not None


def _meter_from_flags(flags: MeterFlags, profiles_dir: Path | None) -> MeterAnswers:
    if flags.profile is None:
        raise InitError("--meter-profile is needed with --meter-tcp/--meter-rtu")
    if (flags.tcp is None) == (flags.rtu is None):
        raise InitError(
            "give the meter's connection: --meter-tcp HOST[:PORT] or --meter-rtu DEVICE"
        )
    profile = check_profile(flags.profile, profiles_dir)
    if flags.tcp is not None:
        host, port = parse_host_port(flags.tcp, profile.tcp.port if profile.tcp else 502)
        unit = (
            flags.unit_id
            if flags.unit_id is not None
            else (profile.tcp.unit_id if profile.tcp else 1)
        )
        meter = MeterAnswers(profile.id, "tcp", unit, host=host, port=port)
    else:
        serial = profile.serial
        parity = (flags.parity or (serial.parity if serial else "N")).upper()
        if parity not in ("N", "E", "O"):
            raise InitError(f"--parity {flags.parity!r}: use N, E or O")
        stopbits = flags.stopbits or (serial.stopbits if serial else 1)
        if stopbits not in (1, 2):
            raise InitError(f"--stopbits {stopbits}: use 1 or 2")
        meter = MeterAnswers(
            profile.id,
            "rtu",
            flags.unit_id if flags.unit_id is not None else (serial.unit_id if serial else 1),
            device=flags.rtu,
            baudrate=flags.baudrate or (serial.baudrate if serial else 9600),
            parity=parity,  # type: ignore[arg-type]
            stopbits=stopbits,  # type: ignore[arg-type]
        )
    check_meter(meter)
    return meter


def run_wizard(
    answers: SiteAnswers, given: set[str], meter_flags: MeterFlags, profiles_dir: Path | None
) -> None:
    """Ask for everything not given by a flag (``given`` names the answered fields)."""
    typer.echo(
        "edgegw init: a few questions about this site "
        "(Ctrl-C stops; nothing is written before the end)."
    )
    if "chargers" not in given:
        answers.chargers = _ask(
            "Charger identities, as set in each charger's OCPP URL "
            "(separated by spaces; empty: none yet)",
            check_charger_ids,
            default="",
        )
    if "cloud_url" not in given:
        answers.cloud_url = _ask(
            "Cloud CSMS URL without the charger id (ws:// or wss://; empty: standalone, no cloud)",
            _optional(check_cloud_url),
            default="",
        )
    if answers.cloud_url is not None and "cloud_passwords" not in given:
        for charger_id in answers.chargers:
            password = _ask_secret(f"Cloud password for {charger_id} (empty: none)")
            if password:
                answers.cloud_passwords[charger_id] = password
    if (
        "charger_passwords" not in given
        and answers.chargers
        and typer.confirm(
            "Should the chargers log in to the gateway with a password (OCPP Basic auth)?",
            default=False,
        )
    ):
        for charger_id in answers.chargers:
            password = _ask_secret(f"Password of {charger_id} (empty: generate one)")
            if password:
                answers.charger_passwords[charger_id] = password
            else:
                answers.charger_passwords[charger_id] = generate_password()
                answers.generated.add(charger_id)
    if "site_limit" not in given:
        answers.site_limit = _ask(
            "Main fuse per phase in A, e.g. 63 or 63,63,40 (empty: no load capping)",
            _optional(check_site_limit),
            default="",
        )
    if answers.site_limit is not None:
        if "margin" not in given:
            answers.margin = _ask(
                "Margin kept free below the fuse (A)", _amperes, _num(answers.margin)
            )
        if "fallback_ev" not in given:
            limit, margin = answers.site_limit, answers.margin

            def fallback(text: str) -> float | None:
                amps = _optional(_amperes)(text)
                check_site(limit, margin, amps)  # below the fuse minus the margin
                return amps

            answers.fallback_ev = _ask(
                "If the meter cannot be read, what may all chargers together draw per phase "
                "(A; empty: pause charging until it reads again)",
                fallback,
                default="",
            )
        check_site(answers.site_limit, answers.margin, answers.fallback_ev)
    if meter_flags.given or answers.site_limit is not None:
        if answers.site_limit is not None and not meter_flags.given:
            typer.echo("Load capping follows the building's meter.")
        _ask_meter(answers, meter_flags, profiles_dir)
        if answers.site_limit is not None and "meter_role" not in given:
            behind = typer.confirm(
                "Does this meter measure the chargers too (they are wired behind it)? "
                "Answer no if it measures only the rest of the building",
                default=True,
            )
            answers.meter_role = "grid" if behind else "non_ev"
    elif typer.confirm(
        "Is there a building meter to read anyway (shown only, no capping)?", default=False
    ):
        _ask_meter(answers, meter_flags, profiles_dir)


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def _explicit(answers: SiteAnswers, given: set[str]) -> None:
    """Without questions, the choices that change what the site does must be made by flags:
    a forgotten --cloud-url must not quietly become a standalone site, nor a forgotten
    --meter-role a meter read the wrong way round."""
    if "cloud_url" not in given:
        raise InitError(
            "say where the chargers' data goes: --cloud-url URL (the operator's CSMS) or "
            "--standalone (no cloud)"
        )
    if answers.site_limit is not None and "meter_role" not in given:
        raise InitError(
            "load capping needs --meter-role: grid if the meter measures the chargers too, "
            "non_ev if it measures only the rest of the building"
        )


def _summary(answers: SiteAnswers) -> str:
    parts = [f"{len(answers.chargers)} charger(s)"]
    parts.append(f"cloud {answers.cloud_url}" if answers.cloud_url else "standalone (no cloud)")
    if answers.site_limit is not None:
        limit = answers.site_limit
        shown = _num(limit) if isinstance(limit, int | float) else "/".join(_num(v) for v in limit)
        parts.append(f"load capping at {shown} A per phase")
        parts.append(
            "the meter measures the chargers too"
            if answers.meter_role == "grid"
            else "the meter measures the building without the chargers"
        )
        fallback = answers.fallback_ev
        parts.append(
            "charging pauses while the meter is lost"
            if fallback is None
            else f"{_num(fallback)} A for all chargers while the meter is lost"
        )
    if answers.meter is not None:
        m = answers.meter
        parts.append(f"meter {m.profile} unit {m.unit_id} on {m.where()}")
    return ", ".join(parts)


def _validate(text: str, answers: SiteAnswers, source: str) -> None:
    """Parse the rendered text exactly as the gateway will, secrets given inline."""
    data = tomllib.loads(text)
    for charger in data.get("chargers", []):
        password = answers.cloud_passwords.get(charger["id"])
        if password is not None:
            charger["cloud_password"] = password
    parse_config(data, source=source)


@contextlib.contextmanager
def _init_errors(json_mode: bool) -> Iterator[None]:
    try:
        yield
    except InitError as exc:
        fail(str(exc), EXIT_USAGE, "run `edgegw init --help` for the flags", json_mode=json_mode)


def init(
    *,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    charger: Annotated[
        list[str] | None,
        typer.Option("--charger", help="Charger identity (repeatable)."),
    ] = None,
    cloud_url: Annotated[
        str | None, typer.Option(help="Cloud CSMS URL, ws:// or wss://, without the charger id.")
    ] = None,
    standalone: Annotated[
        bool, typer.Option(help="No cloud: the gateway is the chargers' only CSMS.")
    ] = False,
    cloud_ca_file: Annotated[
        Path | None, typer.Option(help="CA certificate of a CSMS with a private CA.")
    ] = None,
    cloud_passwords: Annotated[
        str | None,
        typer.Option(
            help="File of ID=password lines with each charger's cloud password (- = stdin)."
        ),
    ] = None,
    charger_passwords: Annotated[
        str | None,
        typer.Option(help="File of ID=password lines the chargers log in with (stored hashed)."),
    ] = None,
    generate_charger_passwords: Annotated[
        bool,
        typer.Option(help="Generate a login password per charger (saved to a 0600 file)."),
    ] = False,
    site_limit: Annotated[
        str | None, typer.Option(help="Main fuse per phase in A: 63, or 63,63,40 for L1,L2,L3.")
    ] = None,
    margin: Annotated[
        float | None, typer.Option(help="Kept free below the fuse (A).", min=0)
    ] = None,
    fallback_ev: Annotated[
        float | None,
        typer.Option(
            help="What all chargers together may draw while the meter is lost (A).", min=0
        ),
    ] = None,
    meter_role: Annotated[
        str | None,
        typer.Option(
            help="With --site-limit: grid (the meter measures the chargers too) or non_ev "
            "(only the rest of the building). Needed with --yes."
        ),
    ] = None,
    max_current: Annotated[
        float | None, typer.Option(help="Highest current of every charger (A).", min=6, max=500)
    ] = None,
    meter_profile: Annotated[
        str | None,
        typer.Option(
            help="Meter profile id (`edgegw meter profiles`).",
            autocompletion=complete_meter_profile,
        ),
    ] = None,
    meter_tcp: Annotated[
        str | None, typer.Option(help="Meter over Modbus TCP: HOST[:PORT].")
    ] = None,
    meter_rtu: Annotated[str | None, typer.Option(help="Meter on RS-485: serial device.")] = None,
    unit_id: Annotated[int | None, typer.Option(help="Meter unit id.", min=0, max=247)] = None,
    baudrate: BaudrateOption = None,
    parity: Annotated[str | None, typer.Option(help="RTU parity N, E or O.")] = None,
    stopbits: StopbitsOption = None,
    port: Annotated[
        int, typer.Option(help="Port the chargers connect to.", min=1, max=65535)
    ] = 9000,
    unknown_cards: Annotated[
        str, typer.Option(help="Cards nobody vouches for while offline: reject or accept.")
    ] = "reject",
    secrets_dir: Annotated[
        Path | None, typer.Option(help="Where secret files go (default: <config dir>/secrets).")
    ] = None,
    profiles_dir: Annotated[
        Path | None,
        typer.Option(
            help="Only the meter profiles in this directory (default: the shipped ones and "
            "/etc/edgegw/hardware/meters)."
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Ask nothing: take every answer from the flags.")
    ] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing configuration.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a new configuration: asks about the site, or takes everything from flags with --yes.

    Cloud passwords go to one 0600 file per charger, charger passwords are stored hashed;
    no secret is written into the configuration or printed.
    """
    interactive = not (yes or as_json)
    path = config
    secrets_folder = secrets_dir or path.parent / "secrets"
    if path.exists() and not force:
        fail(
            f"{path} already exists; nothing was changed",
            EXIT_FAILURE,
            f"check it with `edgegw config check {path}`, or run again with --force to replace "
            "it (the old file is kept as .bak)",
            json_mode=as_json,
        )
    answers = SiteAnswers(port=port)
    given: set[str] = set()
    meter_flags = MeterFlags(
        meter_profile, meter_tcp, meter_rtu, unit_id, baudrate, parity, stopbits
    )
    with _init_errors(as_json):
        if unknown_cards not in ("reject", "accept"):
            raise InitError(f"--unknown-cards {unknown_cards!r}: use reject or accept")
        answers.unknown_cards = "accept" if unknown_cards == "accept" else "reject"
        if charger is not None:
            answers.chargers = check_charger_ids(" ".join(charger))
            given.add("chargers")
        if standalone and cloud_url is not None:
            raise InitError("give either --cloud-url or --standalone")
        if cloud_url is not None:
            answers.cloud_url = check_cloud_url(cloud_url)
            given.add("cloud_url")
        elif standalone:
            given.add("cloud_url")
        if cloud_ca_file is not None:
            if not cloud_ca_file.is_file():
                raise InitError(f"--cloud-ca-file {cloud_ca_file} does not exist")
            answers.ca_file = cloud_ca_file.resolve()
        if cloud_passwords == "-" and charger_passwords == "-":
            raise InitError("only one of --cloud-passwords and --charger-passwords can read stdin")
        if cloud_passwords is not None:
            answers.cloud_passwords = read_password_file(cloud_passwords)
            given.add("cloud_passwords")
        if charger_passwords is not None and generate_charger_passwords:
            raise InitError("give either --charger-passwords or --generate-charger-passwords")
        if charger_passwords is not None:
            answers.charger_passwords = read_password_file(charger_passwords)
            given.add("charger_passwords")
        if generate_charger_passwords:
            given.add("charger_passwords")
        if site_limit is not None:
            answers.site_limit = check_site_limit(site_limit)
            given.add("site_limit")
        if margin is not None:
            answers.margin = margin
            given.add("margin")
        answers.fallback_ev = fallback_ev
        if fallback_ev is not None:
            given.add("fallback_ev")
        if meter_role is not None:
            if meter_role not in ("grid", "non_ev"):
                raise InitError(f"--meter-role {meter_role!r}: use grid or non_ev")
            answers.meter_role = "grid" if meter_role == "grid" else "non_ev"
            given.add("meter_role")
        if not interactive:
            _explicit(answers, given)
        answers.max_current = max_current
        if interactive:
            try:
                run_wizard(answers, given, meter_flags, profiles_dir)
            except typer.Abort:
                fail("stopped; nothing was written", EXIT_FAILURE)
        elif meter_flags.given:
            answers.meter = _meter_from_flags(meter_flags, profiles_dir)
        if generate_charger_passwords:
            for charger_id in answers.chargers:
                answers.charger_passwords[charger_id] = generate_password()
                answers.generated.add(charger_id)
        known = set(answers.chargers)
        for source, mapping in (
            ("--cloud-passwords", answers.cloud_passwords),
            ("--charger-passwords", answers.charger_passwords),
        ):
            unknown = sorted(set(mapping) - known)
            if unknown:
                raise InitError(f"{source} names chargers not in --charger: {', '.join(unknown)}")
        if answers.cloud_passwords and answers.cloud_url is None:
            raise InitError("cloud passwords were given but no --cloud-url")
        if answers.site_limit is not None:
            check_site(answers.site_limit, answers.margin, answers.fallback_ev)
            if answers.meter is None:
                raise InitError(
                    "load capping (--site-limit) needs the building meter: give --meter-profile "
                    "and --meter-tcp or --meter-rtu, or leave out --site-limit"
                )
    for charger_id, password in answers.charger_passwords.items():
        if len(password) < 8:
            fail(
                f"the password for {charger_id} is shorter than 8 characters",
                EXIT_USAGE,
                "OCPP asks for 16 to 40 characters; use --generate-charger-passwords",
                json_mode=as_json,
            )
    hashes = {cid: hash_password(pw) for cid, pw in answers.charger_passwords.items()}
    text = render_config(answers, secrets_dir=secrets_folder.absolute(), hashes=hashes)
    try:
        _validate(text, answers, str(path))
    except ConfigError as exc:
        fail(
            str(exc),
            EXIT_CONFIG,
            "correct the flags or answers above and run again",
            json_mode=as_json,
        )

    secret_files = [secret_path(secrets_folder, cid) for cid in answers.cloud_passwords]
    generated_file = secrets_folder / GENERATED_PASSWORDS if answers.generated else None
    if not force:
        clashes = [p for p in [*secret_files, generated_file] if p is not None and p.exists()]
        if clashes:
            fail(
                f"secret file {clashes[0]} already exists; nothing was changed",
                EXIT_FAILURE,
                "run again with --force to replace it, or choose --secrets-dir",
                json_mode=as_json,
            )
    if interactive:
        typer.echo(f"\nAbout to write {path}: {_summary(answers)}.")
        if not typer.confirm("Write it?", default=True):
            fail("nothing was written", EXIT_FAILURE)

    owner = _service_ids()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if secret_files or generated_file:
            secrets_folder.mkdir(mode=SECRETS_DIR_MODE, parents=True, exist_ok=True)
            if owner is not None:
                os.chown(secrets_folder, *owner)
        for charger_id, secret in answers.cloud_passwords.items():
            write_file(secret_path(secrets_folder, charger_id), secret + "\n", SECRET_MODE, owner)
        if generated_file is not None:
            lines = [
                "# Passwords generated by `edgegw init`: set each one in its charger (OCPP",
                "# Basic-auth password / AuthorizationKey), then delete this file.",
                "# The ID=password lines are what `edgegw init --charger-passwords` reads.",
                *(f"{cid}={answers.charger_passwords[cid]}" for cid in sorted(answers.generated)),
            ]
            write_file(generated_file, "\n".join(lines) + "\n", SECRET_MODE)
        if path.exists():
            backup = path.with_name(path.name + ".bak")
            path.replace(backup)
        write_file(path, text, CONFIG_MODE, None if owner is None else (0, owner[1]))
    except OSError as exc:
        fail(
            f"cannot write {exc.filename or path}: {exc.strerror}",
            EXIT_FAILURE,
            "run it as root (sudo), or choose another place with --config and --secrets-dir",
            json_mode=as_json,
        )
    try:
        load_config(path)
    except ConfigError as exc:
        fail(
            f"the written file does not load: {exc}",
            EXIT_CONFIG,
            "this is a bug in `edgegw init`; please report it with the file (no secret is in it)",
            json_mode=as_json,
        )
    cfg_arg = "" if path == DEFAULT_CONFIG_PATH else f" -c {path}"
    steps = [f"edgegw config check {path}"]
    if answers.meter is not None:
        steps.append(f"edgegw meter probe{cfg_arg}")
    if answers.cloud_url is not None:
        steps.append(f"edgegw cloud check{cfg_arg}")
    steps.append("systemctl enable --now edgegw")
    warnings = []
    if not answers.chargers:
        warnings.append(
            "no chargers configured: every charger is refused until it is added with "
            f"`edgegw chargers add ID{cfg_arg}` (or approved from `edgegw chargers pending`)"
        )
    data: dict[str, Any] = {
        "ok": True,
        "config": str(path),
        "summary": _summary(answers),
        "warnings": warnings,
        "secret_files": [str(p) for p in secret_files],
        "generated_passwords_file": None if generated_file is None else str(generated_file),
        "next": steps,
    }

    def render(d: dict[str, Any]) -> str:
        lines = [f"Wrote {d['config']} (mode 0640): {d['summary']}."]
        lines += [f"Warning: {w}" for w in d["warnings"]]
        if d["secret_files"]:
            lines.append("Cloud passwords, one file per charger (mode 0600, never printed):")
            lines += [f"  {p}" for p in d["secret_files"]]
        if d["generated_passwords_file"]:
            lines.append(
                f"Generated charger passwords are in {d['generated_passwords_file']} (mode 0600): "
                "set each in its charger, then delete the file."
            )
        lines.append("Next:")
        lines += [f"  {s}" for s in d["next"]]
        return "\n".join(lines)

    emit(data, as_json, render)
