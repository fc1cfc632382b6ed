"""``edgegw messages show|dump``: the troubleshooting message log.

The log is in the daemon's memory (see :mod:`edgegw.store.messagelog`); these commands ask
the running daemon (op ``messages``, paged). When it is not running they read the file it left
when it stopped (next to the database), and say so on stderr. ``dump`` writes the frames,
oldest first, as JSON lines: one object per frame with ``seq``, ``at`` (Unix s), ``time``
(UTC), ``charger``, ``direction`` and ``frame`` (the OCPP-J text as it crossed the gateway,
passwords masked).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from edgegw.cli.backend import op_errors
from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_FAILURE,
    ConfigOption,
    DaemonClient,
    JsonOption,
    emit,
    fail,
    load_config_or_fail,
    note,
    running_daemon,
)
from edgegw.config import Config
from edgegw.store.messagelog import LoggedFrame, dump_path, read_dump, write_frames

messages_app = typer.Typer(
    help="The troubleshooting message log (the newest OCPP frames): show, dump to a file.",
    no_args_is_help=True,
)

ChargerOption = Annotated[
    str | None, typer.Option("--charger", help="Only the frames of this charger.")
]
_PAGE = 10_000


def _from_daemon(client: DaemonClient, charger: str | None, limit: int | None) -> list[LoggedFrame]:
    """The newest ``limit`` frames (None: all) from the daemon, oldest first."""
    frames: list[LoggedFrame] = []
    before: int | None = None
    while limit is None or len(frames) < limit:
        page = min(_PAGE, limit - len(frames)) if limit is not None else _PAGE
        args: dict[str, Any] = {"limit": page}
        if charger is not None:
            args["charger"] = charger
        if before is not None:
            args["before"] = before
        answer = client.call("messages", **args)
        frames.extend(f for f in map(_frame, answer["frames"]) if f is not None)
        before = answer["next_before"]
        if before is None:
            break
    frames.reverse()
    return frames


def _frame(item: dict[str, Any]) -> LoggedFrame | None:
    try:
        return LoggedFrame(
            int(item["seq"]),
            float(item["at"]),
            str(item["charger"]),
            str(item["direction"]),
            str(item["frame"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _from_file(config: Config, charger: str | None, limit: int | None) -> list[LoggedFrame]:
    path = dump_path(config.store.path)
    note(f"edgegw is not running: reading the message log it left in {path}")
    try:
        frames = read_dump(path)
    except FileNotFoundError:
        return []
    if charger is not None:
        frames = [f for f in frames if f.charger_id == charger]
    return frames if limit is None else frames[len(frames) - min(limit, len(frames)) :]


def _frames(
    config: Config, json_mode: bool, charger: str | None, limit: int | None
) -> tuple[str, list[LoggedFrame]]:
    """Who answered (``daemon`` or ``file``) and the frames, oldest first."""
    with op_errors(json_mode):
        client = running_daemon(config)
        if client is None:
            return "file", _from_file(config, charger, limit)
        return "daemon", _from_daemon(client, charger, limit)
    raise AssertionError("op_errors exits on every error")


@messages_app.command("show")
def show(
    charger: ChargerOption = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="How many of the newest frames.")
    ] = 50,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """The newest frames that crossed the gateway, oldest of them first."""
    cfg = load_config_or_fail(config, json_mode=as_json)
    source, frames = _frames(cfg, as_json, charger, limit)
    result = {"ok": True, "source": source, "frames": [f.to_json() for f in frames]}
    emit(result, as_json, _render)


@messages_app.command("dump")
def dump(
    output: Annotated[
        Path, typer.Argument(help="The file to write (JSON lines); - for standard output.")
    ],
    charger: ChargerOption = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Write the whole message log to a file, oldest frame first, one JSON object a line."""
    cfg = load_config_or_fail(config, json_mode=as_json)
    source, frames = _frames(cfg, as_json, charger, None)
    if str(output) == "-":
        write_frames(sys.stdout, frames)
        return
    try:
        with output.open("w", encoding="ascii") as out:
            count = write_frames(out, frames)
    except OSError as exc:
        fail(f"cannot write {output}: {exc}", EXIT_FAILURE, json_mode=as_json)
    result = {"ok": True, "source": source, "file": str(output), "frames": count}
    emit(result, as_json, lambda r: f"{r['frames']} frame(s) written to {r['file']}")


def _render(result: dict[str, Any]) -> str:
    frames = result["frames"]
    if not frames:
        return "No frames in the message log."
    lines = []
    for item in frames:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item["at"]))
        lines.append(f"{when} {item['charger']} {item['direction']:9s} {item['frame']}")
    return "\n".join(lines)
