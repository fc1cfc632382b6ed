"""The ``edgegw`` command line."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgegw import __version__
from edgegw.auth.passwords import hash_password
from edgegw.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from edgegw.logs import setup_logging

app = typer.Typer(
    name="edgegw",
    help="On-premise EV-charging edge gateway: local OCPP server, cloud proxy, load capping.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Work with the configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")

# Exit codes: 0 ok, 1 runtime failure, 2 usage error (typer), 3 invalid configuration.
EXIT_CONFIG = 3

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Configuration file.", envvar="EDGEGW_CONFIG")
]


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_CONFIG) from None


@app.command()
def run(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Run the gateway daemon (what systemd starts)."""
    from edgegw.daemon import Gateway  # noqa: PLC0415
    from edgegw.sdnotify import Notifier  # noqa: PLC0415
    from edgegw.store.db import StoreError  # noqa: PLC0415

    cfg = _load(config)
    setup_logging(cfg.logging.level)
    try:
        asyncio.run(Gateway(cfg, notifier=Notifier()).run())
    except StoreError as exc:
        typer.echo(f"edgegw: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"edgegw: cannot start: {exc}", err=True)
        raise typer.Exit(1) from None


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="Configuration file to validate.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Validate a configuration file without starting anything; list every problem."""
    try:
        cfg = load_config(file)
    except ConfigError as exc:
        if as_json:
            typer.echo(json.dumps({"ok": False, "file": str(file), "problems": exc.problems}))
        else:
            typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    summary = {
        "ok": True,
        "file": str(file),
        "chargers": len(cfg.chargers),
        "cloud": cfg.cloud.url if cfg.cloud else None,
        "listen": f"{cfg.server.host}:{cfg.server.port}{cfg.server.path}",
        "store": str(cfg.store.path),
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    cloud = f"relaying to {summary['cloud']}" if cfg.cloud else "standalone (no cloud)"
    typer.echo(
        f"{file}: OK — {len(cfg.chargers)} charger(s), listening on {summary['listen']}, {cloud}"
    )


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
def demo(
    chargers: Annotated[int, typer.Option(help="Number of simulated chargers.", min=1)] = 6,
    duration: Annotated[
        float, typer.Option(help="Stop after this many seconds (0 = until Ctrl-C).", min=0)
    ] = 0,
    port: Annotated[int, typer.Option(help="Gateway port (0 = any free port).")] = 0,
    session_seconds: Annotated[
        float, typer.Option(help="Typical length of a simulated session (s).", min=1)
    ] = 8.0,
) -> None:
    """Run the whole system on simulated chargers and a simulated cloud, no hardware needed."""
    from edgegw.demo import run_demo  # noqa: PLC0415

    setup_logging("info")
    ok = asyncio.run(
        run_demo(
            chargers=chargers,
            duration=duration or None,
            port=port,
            session_seconds=session_seconds,
        )
    )
    if not ok:
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()
