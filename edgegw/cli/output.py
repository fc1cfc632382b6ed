"""What every CLI command shares: exit codes, output, errors, config, the daemon's socket.

Commands print their result with :func:`emit` (JSON with ``--json``, else text, tables with
:func:`table`), end with :func:`fail` (a message, an exit code and what to do next), and reach
the daemon through :func:`control_client` (or :func:`running_daemon`, when it may be stopped).
Exit codes are the same for every command, so scripts can tell a stopped daemon from a bad
configuration:

==  =========================================================
0   done
1   runtime failure (the daemon refused, a file cannot be read)
2   usage error (bad option value; typer uses it too)
3   invalid or missing configuration
4   the daemon is not running and the command needs it
==  =========================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from edgegw.cli.completion import complete_charger
from edgegw.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from edgegw.control.client import (
    ControlClientError,
    DaemonNotRunning,
    PermissionDenied,
    RemoteError,
    call_sync,
)
from edgegw.control.protocol import ErrorCode

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_DAEMON_DOWN = 4

START_HINT = "start it with `systemctl start edgegw`"

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Configuration file.", envvar="EDGEGW_CONFIG")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ChargerArgument = Annotated[
    str,
    typer.Argument(
        help="The charger's OCPP identity (last URL path segment).",
        autocompletion=complete_charger,
    ),
]
ChargerFilterOption = Annotated[
    str | None,
    typer.Option("--charger", help="Only this charger.", autocompletion=complete_charger),
]

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "EXIT_CONFIG",
    "EXIT_DAEMON_DOWN",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "ChargerArgument",
    "ChargerFilterOption",
    "ConfigOption",
    "DaemonClient",
    "JsonOption",
    "control_client",
    "control_errors",
    "emit",
    "fail",
    "load_config_or_fail",
    "note",
    "running_daemon",
    "table",
    "validation_problems",
    "write_output",
]


def emit(data: Any, json_mode: bool, render_text: Callable[[Any], str] | None = None) -> None:
    """Print ``data`` as one JSON document, or as ``render_text(data)`` for people."""
    if json_mode or render_text is None:
        typer.echo(json.dumps(data, ensure_ascii=False))
    else:
        text = render_text(data)
        if text:
            typer.echo(text)


def plural(count: Any, one: str, many: str | None = None) -> str:
    """``1 entry``, ``2 entries``, ``0 entries`` (``many`` defaults to ``one + "s"``); a count
    that is not a number (``None``: unknown) is shown as ``?``."""
    if not isinstance(count, int) or isinstance(count, bool):
        return f"? {many or one + 's'}"
    return f"{count} {one if count == 1 else many or one + 's'}"


def table(rows: Sequence[Sequence[str]], right: Collection[int] = ()) -> list[str]:
    """Rows as aligned columns (the first row is the heading); columns in ``right`` are
    right-aligned (numbers), the others left-aligned."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            str(cell).rjust(width) if i in right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def write_output(text: str, output: Path | None) -> None:
    """``text`` to the file ``output``, or as it is to stdout when there is none."""
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}", EXIT_FAILURE)


def validation_problems(exc: ValidationError) -> str:
    """A pydantic validation error as one line, the way the configuration words its own."""
    return "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())


def note(message: str) -> None:
    """A remark for the person at the terminal (stderr: never mixed into JSON or CSV)."""
    typer.echo(message, err=True)


def fail(
    message: str, code: int = EXIT_FAILURE, hint: str | None = None, *, json_mode: bool = False
) -> NoReturn:
    """Say what went wrong (and what to do next) and exit with ``code``.

    With ``json_mode`` the error is also a JSON object on stdout, so a script reading stdout
    always gets a document.
    """
    if json_mode:
        typer.echo(
            json.dumps({"ok": False, "error": message, "hint": hint, "exit_code": code}),
        )
    typer.echo(f"edgegw: {message}", err=True)
    if hint:
        typer.echo(f"  → {hint}", err=True)
    raise typer.Exit(code)


def load_config_or_fail(path: Path, *, json_mode: bool = False) -> Config:
    """The configuration at ``path``, or exit 3 listing every problem."""
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(
            str(exc),
            EXIT_CONFIG,
            f"check it with `edgegw config check {path}`",
            json_mode=json_mode,
        )


class DaemonClient:
    """One-shot calls to the running daemon over its control socket (blocking)."""

    def __init__(self, socket: Path, timeout: float = 10.0) -> None:
        self.socket = socket
        self.timeout = timeout

    def call(self, op: str, /, **args: Any) -> Any:
        """Run ``op``; raises a :class:`~edgegw.control.client.ControlClientError` on failure."""
        return call_sync(self.socket, op, args, timeout=self.timeout)


def control_client(config: Config, *, timeout: float = 10.0) -> DaemonClient:
    """A client of the daemon of ``config``, which answered a ping just now.

    Raises :class:`~edgegw.control.client.DaemonNotRunning` (whose message says how to start
    it) when no daemon answers, or another ``ControlClientError`` (e.g. ``PermissionDenied``).
    """
    client = DaemonClient(config.control.socket, timeout)
    client.call("ping")
    return client


def running_daemon(config: Config, *, timeout: float = 10.0) -> DaemonClient | None:
    """:func:`control_client`, or None when no daemon runs (other failures raise)."""
    try:
        return control_client(config, timeout=timeout)
    except DaemonNotRunning:
        return None


@contextmanager
def control_errors(*, json_mode: bool = False) -> Iterator[None]:
    """Turn a failed daemon call into a clear message and the matching exit code."""
    try:
        yield
    except DaemonNotRunning as exc:
        fail(str(exc), EXIT_DAEMON_DOWN, json_mode=json_mode)
    except PermissionDenied as exc:
        fail(exc.message, EXIT_FAILURE, json_mode=json_mode)
    except RemoteError as exc:
        code = EXIT_USAGE if exc.code == ErrorCode.BAD_ARGS else EXIT_FAILURE
        fail(f"the daemon refused: {exc.message}", code, json_mode=json_mode)
    except ControlClientError as exc:
        fail(str(exc), EXIT_FAILURE, json_mode=json_mode)
