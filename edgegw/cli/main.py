"""The ``edgegw`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from edgegw import __version__
from edgegw.auth.passwords import hash_password
from edgegw.cli import doctor as doctor_cli
from edgegw.cli import dump as dump_cli
from edgegw.cli import enroll as _enroll  # noqa: F401 - adds `cards enroll` and `cards learn`
from edgegw.cli import run as run_cli
from edgegw.cli import status as status_cli
from edgegw.cli import tui as tui_cli
from edgegw.cli.cards import cards_app
from edgegw.cli.chargers import chargers_app
from edgegw.cli.cloudcheck import cloud_app
from edgegw.cli.commission import register_commission, register_probe_commands
from edgegw.cli.configcheck import every_problem, merge
from edgegw.cli.energy import energy_app
from edgegw.cli.helpflags import plain_flags
from edgegw.cli.init import init as init_command
from edgegw.cli.messages import messages_app
from edgegw.cli.meter import meter_app
from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_CONFIG,
    EXIT_FAILURE,
    ConfigOption,
    JsonOption,
)
from edgegw.cli.sessions import sessions_app
from edgegw.config import Config, ConfigError, load_config
from edgegw.hardware_catalogue import HardwareCatalogue
from edgegw.logs import setup_logging
from edgegw.startcheck import device_file_problems, serial_problems

app = typer.Typer(
    name="edgegw",
    help="On-premise EV-charging edge gateway: local OCPP server, cloud proxy, load capping.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Work with the configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(meter_app, name="meter")
app.add_typer(energy_app, name="energy")
app.add_typer(cloud_app, name="cloud")
app.command("init")(init_command)
app.add_typer(sessions_app, name="sessions")
app.add_typer(messages_app, name="messages")
app.add_typer(cards_app, name="cards")
app.add_typer(chargers_app, name="chargers")
register_probe_commands(chargers_app)
register_commission(app)
status_cli.register(app)
doctor_cli.register(app)
dump_cli.register(app)
tui_cli.register(app)


app.command("run")(run_cli.run)


def _readable_problem(path: Path, what: str) -> str | None:
    if not path.exists():
        return f"{what}: {path} does not exist"
    if not path.is_file():
        return f"{what}: {path} is not a file"
    if not os.access(path, os.R_OK):
        return f"{what}: {path} is not readable by this user (the daemon runs as 'edgegw')"
    return None


def _path_fields(model: BaseModel, where: str) -> Iterator[tuple[str, Path]]:
    """Every ``*_file`` path of the configuration, with its key path (TLS, CA, passwords)."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{where}.{name}" if where else name
        if isinstance(value, Path) and name.endswith("file"):
            yield key, value
        elif isinstance(value, BaseModel):
            yield from _path_fields(value, key)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from _path_fields(item, f"{key}[{i}]")
        elif isinstance(value, dict):
            for k, item in value.items():
                if isinstance(item, BaseModel):
                    yield from _path_fields(item, f"{key}.{k}")


def _secret_refs(data: Any, where: str = "") -> Iterator[tuple[str, Path]]:
    """``{ file = "..." }`` secret references in the raw TOML, with their key paths."""
    if isinstance(data, dict):
        if set(data) == {"file"} and isinstance(data["file"], str):
            yield where, Path(data["file"])
            return
        for key, value in data.items():
            yield from _secret_refs(value, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from _secret_refs(item, f"{where}[{i}]")


def reference_checks(cfg: Config, raw: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Problems and warnings about what the configuration refers to: meter profiles, charger
    models, certificate and secret files. Nothing is opened but files."""
    from edgegw.energy.meters import MeterConfigError, MeterService  # noqa: PLC0415

    catalogue = HardwareCatalogue.for_config(cfg)
    problems = device_file_problems(cfg, catalogue)
    warnings: list[str] = []
    if cfg.meters and not any(p.startswith("meters[") for p in problems):
        try:
            MeterService(cfg)  # validates buses and unit ids without opening anything
        except MeterConfigError as exc:
            problems.extend(str(exc).splitlines())
    for device in serial_problems(cfg, grace=0):
        warnings.append(
            f"{device}; until it can be opened, `edgegw run` counts its meters as lost "
            "(load capping uses the fallback limits)"
        )
    for key, path in _path_fields(cfg, ""):
        problem = _readable_problem(path, key)
        if problem:
            problems.append(problem)
    for key, path in _secret_refs(raw):
        with contextlib.suppress(OSError):
            if path.stat().st_mode & 0o077:
                warnings.append(
                    f"{key}: secret file {path} can be read by other users; chmod 600 it"
                )
    for key, path in _path_fields(cfg, ""):
        if key.endswith("password_file"):
            with contextlib.suppress(OSError):
                if path.stat().st_mode & 0o077:
                    warnings.append(f"{key}: {path} can be read by other users; chmod 600 it")
    clear_text = cfg.cloud is not None and cfg.cloud.url.startswith("ws://")
    if clear_text and any(c.cloud_password is not None for c in cfg.chargers):
        warnings.append(
            "cloud.url: ws:// sends the cloud passwords in clear text; use wss:// unless "
            "the link is a VPN"
        )
    if not cfg.store.path.parent.is_dir():
        warnings.append(
            f"store.path: the directory {cfg.store.path.parent} does not exist yet; systemd "
            "creates it (StateDirectory=), otherwise create it before starting"
        )
    return problems, warnings


@config_app.command("check")
def config_check(
    file: Annotated[
        Path | None, typer.Argument(help="Configuration file to validate (default: --config).")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    credentials_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where { credential = ... } secrets are (default: $CREDENTIALS_DIRECTORY).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a configuration file without starting anything; list every problem.

    Besides the file itself, checks what it refers to: meter profiles, charger models,
    certificate and secret files. Exits 3 if anything is wrong.
    """
    path = file or config
    problems: list[str] = []
    warnings: list[str] = []
    summary: dict[str, Any] = {}
    credentials = None if credentials_dir is None else str(credentials_dir)
    try:
        cfg = load_config(path, credentials_directory=credentials)
    except ConfigError as exc:
        problems = list(exc.problems)
        _every_problem(path, credentials, problems, warnings)
    else:
        more, warnings = reference_checks(cfg, tomllib.loads(path.read_text(encoding="utf-8")))
        problems += more
        summary = {
            "chargers": len(cfg.chargers),
            "cloud": cfg.cloud.url if cfg.cloud else None,
            "listen": f"{cfg.server.host}:{cfg.server.port}{cfg.server.path}",
            "store": str(cfg.store.path),
            "meters": [f"{m.name}: {m.profile} unit {m.unit_id}" for m in cfg.meters],
            "site_limit_a": list(cfg.site.limits()) if cfg.site else None,
        }
    report = {"ok": not problems, "file": str(path), "problems": problems, "warnings": warnings}
    if as_json:
        typer.echo(json.dumps({**report, **summary}))
    else:
        for warning in warnings:
            typer.echo(f"warning: {warning}", err=True)
        if problems:
            lines = "\n".join(f"  - {p}" for p in problems)
            typer.echo(f"{path}: {len(problems)} problem(s):\n{lines}", err=True)
            typer.echo(f"Fix them, then run `edgegw config check {path}` again.", err=True)
        else:
            cloud = (
                f"relaying to {summary['cloud']}" if summary["cloud"] else "standalone (no cloud)"
            )
            meters = f", {len(summary['meters'])} meter(s)" if summary["meters"] else ""
            typer.echo(
                f"{path}: OK — {summary['chargers']} charger(s){meters}, listening on "
                f"{summary['listen']}, {cloud}"
            )
    if problems:
        raise typer.Exit(EXIT_CONFIG)


def _every_problem(
    path: Path, credentials: str | None, problems: list[str], warnings: list[str]
) -> None:
    """Add what later rounds would find (see :mod:`edgegw.cli.configcheck`): the sections'
    own rules and the whole-file checks on what is valid, and what that refers to."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return  # the file itself is the problem, and it is said
    more, partial, remap = every_problem(raw, credentials_directory=credentials)
    merge(problems, more)
    if partial is None:
        return
    said = {p.split(":", 1)[0] for p in problems}
    try:
        found, cautions = reference_checks(partial, raw)
    except Exception:
        return
    merge(problems, [p for p in found if remap(p).split(":", 1)[0] not in said], remap)
    merge(warnings, cautions, remap)


@app.command("password-hash")
def password_hash(
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Hash a charger password for `password_hash` in the configuration."""
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Charger password: ")
        if getpass.getpass("Again: ") != password:
            typer.echo("The passwords differ.", err=True)
            raise typer.Exit(1)
    if len(password) < 8:
        typer.echo("Refusing a password shorter than 8 characters (OCPP asks for 16+).", err=True)
        raise typer.Exit(1)
    typer.echo(hash_password(password))


@app.command()
def demo(  # noqa: PLR0917 (typer options)
    chargers: Annotated[int, typer.Option(help="Number of simulated chargers.", min=1)] = 6,
    duration: Annotated[
        float,
        typer.Option(
            help="Stop after this many seconds (0 = until Ctrl-C). Runs of 20 s or more "
            "include a short cloud outage and a load-cap event.",
            min=0,
        ),
    ] = 90.0,
    port: Annotated[int, typer.Option(help="Gateway port (0 = any free port).")] = 0,
    session_seconds: Annotated[
        float, typer.Option(help="Typical length of a simulated session (s).", min=1)
    ] = 8.0,
    real_cloud: Annotated[
        bool,
        typer.Option(
            "--real-cloud",
            help="The simulated cloud behaves like a real CSMS: one CALL per charger at a time "
            "(overlapping ones refused), ConcurrentTx for a second start of a card.",
        ),
    ] = False,
    cloud_stall: Annotated[
        float,
        typer.Option(
            help="Every 30 s the simulated cloud stalls this many seconds, then answers "
            "(0 = never).",
            min=0,
        ),
    ] = 0.0,
    site: Annotated[
        Path | None,
        typer.Option(
            "--site",
            help="Play this car park (a gateway configuration, e.g. "
            "examples/carpark-three-level.toml): its site, boards and chargers on simulated "
            "meters, chargers and cloud (--chargers is then its own).",
        ),
    ] = None,
    v201: Annotated[
        int | None,
        typer.Option(
            "--v201",
            help="How many of the chargers speak OCPP 2.0.1 (default: a third, when this "
            "gateway takes 2.0.1 chargers on a site that caps load; else none).",
            min=0,
        ),
    ] = None,
) -> None:
    """Run the whole system on simulated chargers, cloud and site meter, no hardware needed.

    Shows a live summary (a table on a terminal, a short line every 10 s otherwise), plays a
    cloud outage and a load-cap event, and ends by judging the cloud's record (exit 1 if it
    is incomplete) with the commands to look further. The gateway's log goes to a file.
    """
    from edgegw.demo import CarParkError, run_demo  # noqa: PLC0415

    setup_logging("info")
    try:
        ok = asyncio.run(
            run_demo(
                chargers=chargers,
                duration=duration or None,
                port=port,
                session_seconds=session_seconds,
                real_cloud=real_cloud,
                cloud_stall=cloud_stall,
                site=site,
                v201=v201,
            )
        )
    except CarParkError as exc:
        typer.echo(f"edgegw demo: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    if not ok:
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """The ``edgegw`` command. With ``--json`` a usage error (an unknown option, a bad value)
    is a JSON document on stdout too, so a script always gets one."""
    command = typer.main.get_command(app)
    plain_flags(command, "edgegw")
    if "--json" not in sys.argv[1:]:
        command.main(prog_name="edgegw")
        return
    try:
        code = command.main(prog_name="edgegw", standalone_mode=False)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(EXIT_FAILURE)
    except typer.TyperException as exc:
        exit_code = int(getattr(exc, "exit_code", 2))
        usage = getattr(getattr(exc, "ctx", None), "command_path", "edgegw")
        typer.echo(
            json.dumps(
                {
                    "ok": False,
                    "error": exc.format_message(),
                    "hint": f"see `{usage} --help`",
                    "exit_code": exit_code,
                }
            )
        )
        typer.echo(f"edgegw: {exc.format_message()}", err=True)
        sys.exit(exit_code)
    sys.exit(code if isinstance(code, int) else 0)
