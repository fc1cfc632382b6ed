"""``edgegw tui``: the caretaker's terminal UI (see :mod:`edgegw.tui`).

It only needs the daemon's control socket: ``--socket``, else the one named in the
configuration file, else the default (``/run/edgegw/control.sock``) when the configuration
cannot be read by this user (a caretaker account usually cannot read it, and does not need to).
The daemon not running is not an error here: the TUI shows it full screen and waits for it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from edgegw.cli.output import DEFAULT_CONFIG_PATH, ConfigOption, load_config_or_fail
from edgegw.config import ControlConfig

SocketOption = Annotated[
    Path | None,
    typer.Option(
        "--socket",
        help="Control socket of the daemon (default: from the configuration file).",
        envvar="EDGEGW_SOCKET",
    ),
]
ReadOnlyOption = Annotated[
    bool,
    typer.Option("--read-only", help="Look only: no action keys at all (for a public screen)."),
]
AsciiOption = Annotated[
    bool,
    typer.Option("--ascii", help="Draw with ASCII only (automatic on the Linux console)."),
]
ExportDirOption = Annotated[
    Path | None,
    typer.Option("--export-dir", help="Default folder for session exports (default: here)."),
]
LogFileOption = Annotated[
    Path | None,
    typer.Option("--log-file", help="Write the TUI's own log here (the screen is not for logs)."),
]


def register(app: typer.Typer) -> None:
    """Add ``tui`` to the ``edgegw`` command."""
    app.command("tui")(tui)


def control_socket(config: Path, socket: Path | None) -> tuple[Path, str | None]:
    """The socket to use, and a remark when it is a guess (the configuration unreadable)."""
    if socket is not None:
        return socket, None
    if config.is_file() and os.access(config, os.R_OK):
        return load_config_or_fail(config).control.socket, None
    default = ControlConfig().socket
    return default, f"{config} cannot be read by this user; using the default socket {default}"


def tui(
    *,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    socket: SocketOption = None,
    read_only: ReadOnlyOption = False,
    ascii_only: AsciiOption = False,
    export_dir: ExportDirOption = None,
    log_file: LogFileOption = None,
) -> None:
    """Open the caretaker screen: live site view, chargers, sessions, cards, energy, events.

    Keys: F1-F6 (or 1-6) switch pages, letters shown at the bottom act, q quits. Actions that
    change something ask first. Run as root or the edgegw user to act; others may look.
    """
    from edgegw.tui.app import CaretakerApp  # noqa: PLC0415 (textual loads only for the TUI)
    from edgegw.tui.link import DaemonLink  # noqa: PLC0415
    from edgegw.tui.text import glyphs_for  # noqa: PLC0415

    path, remark = control_socket(config, socket)
    root = logging.getLogger()
    root.handlers[:] = [
        logging.FileHandler(log_file) if log_file is not None else logging.NullHandler()
    ]
    root.setLevel(logging.INFO)
    if remark:
        logging.getLogger(__name__).info("%s", remark)
    app = CaretakerApp(
        DaemonLink(path),
        read_only=read_only,
        glyphs=glyphs_for(force_ascii=ascii_only),
        export_dir=export_dir,
    )
    app.run()
