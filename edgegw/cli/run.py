"""``edgegw run``: the gateway daemon (what systemd starts).

Kept apart from the other commands so that :func:`edgegw.cli.entry.main` starts the daemon
without importing every other command's module (about 2 MiB of the daemon's memory for
commands it never runs); the full ``edgegw`` app registers the same function.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import NoReturn

import typer

from edgegw.cli.helpflags import plain_flags
from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_CONFIG,
    EXIT_FAILURE,
    ConfigOption,
    fail,
    load_config_or_fail,
)
from edgegw.hardware_catalogue import HardwareCatalogue, HardwareError
from edgegw.logs import setup_logging
from edgegw.startcheck import device_file_problems, serial_problems


def run(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Run the gateway daemon (what systemd starts)."""
    from edgegw.daemon import Gateway  # noqa: PLC0415
    from edgegw.energy.chargermodels import ChargerModelError  # noqa: PLC0415
    from edgegw.energy.meters import MeterConfigError  # noqa: PLC0415
    from edgegw.proxy import gctuning  # noqa: PLC0415
    from edgegw.sdnotify import Notifier  # noqa: PLC0415
    from edgegw.security.tls import TlsSetupError  # noqa: PLC0415
    from edgegw.store.db import StoreError, StoreSchemaError  # noqa: PLC0415
    from edgegw.telemetry.settings import MqttSetupError  # noqa: PLC0415

    cfg = load_config_or_fail(config)
    setup_logging(cfg.logging.level)
    # Exit 3 (systemd does not restart it) for what only an edit of the site fixes.
    problems = device_file_problems(cfg, HardwareCatalogue.for_config(cfg))
    if problems:
        _cannot_start(problems, config)
    # A serial adapter that is missing or refused does not stop the gateway: without it the
    # chargers would have no server and no cap at all; with it running, its meters count as
    # lost and load capping applies the safe fallback limits until the device can be opened.
    for problem in serial_problems(cfg):
        typer.echo(
            f"edgegw: {problem}; its meters count as lost (load capping uses the fallback "
            "limits) until the device can be opened",
            err=True,
        )
    gctuning.tune()  # thousands of connections: no 0.5 s collector pauses (see gctuning)
    try:
        asyncio.run(Gateway(cfg, notifier=Notifier(), config_path=config).run())
    except (HardwareError, ChargerModelError, MeterConfigError, StoreSchemaError) as exc:
        _cannot_start(str(exc).splitlines(), config)
    except (StoreError, TlsSetupError, MqttSetupError) as exc:
        fail(str(exc), EXIT_FAILURE)
    except OSError as exc:
        fail(f"cannot start: {exc}", EXIT_FAILURE)


def _cannot_start(problems: list[str], config: Path) -> NoReturn:
    """One line per problem (the journal shows each), then exit 3: restarting cannot help."""
    for problem in problems[:-1]:
        typer.echo(f"edgegw: cannot start: {problem}", err=True)
    fail(
        f"cannot start: {problems[-1]}",
        EXIT_CONFIG,
        f"fix the configuration or the device files, check with `edgegw config check {config}`, "
        "then start again",
    )


def run_alone(args: list[str]) -> None:
    """``edgegw run ARGS`` as the full command would parse and run it."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("run")(run)
    command = typer.main.get_command(app)
    plain_flags(command, "run")
    command.main(args=args, prog_name="edgegw run")
