"""``edgegw status``, ``edgegw sync status|parked|retry`` and ``edgegw events``.

These ask the running daemon (ops ``status``, ``sync.*``, ``events``). When it is not running,
``status`` says so plainly (exit code 4) and shows what the store holds; ``sync`` and ``events``
read the store directly with the daemon's own op code, and say so: messages queued for the
cloud are on disk and go out when the daemon starts. ``sync retry`` puts parked messages back
in the queue either way.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from edgegw.cli.backend import Backend, StoreBackend, call_op, daemon_or_store, op_errors
from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_DAEMON_DOWN,
    EXIT_USAGE,
    START_HINT,
    ChargerFilterOption,
    ConfigOption,
    JsonOption,
    emit,
    fail,
    load_config_or_fail,
    plural,
    running_daemon,
    table,
)
from edgegw.config import Config
from edgegw.control.client import ControlClient, RemoteError
from edgegw.control.ops import EVENTS_TOPIC as OPS_EVENTS_TOPIC
from edgegw.control.ops import GatewayOps
from edgegw.control.protocol import ControlError, ErrorCode
from edgegw.store.journal import EventFilter, JournalEntry
from edgegw.store.store import Store

sync_app = typer.Typer(
    help="Messages waiting for the cloud: status, parked (refused by the cloud), retry.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add ``status``, ``events`` and ``sync`` to the ``edgegw`` command."""
    app.command("status")(status)
    app.command("events")(events)
    app.add_typer(sync_app, name="sync")


# ------------------------------------------------------------------------------ backends


class _StatusStore(StoreBackend):
    """The store opened by the CLI, answered by the daemon's own :class:`GatewayOps`."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._store: Store | None = None
        self._ops: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, Any]]] = {}

    def call(self, op: str, /, **args: Any) -> Any:
        self.run(self._open(create=op == "sync.retry"))
        handler = self._ops.get(op)
        if handler is None:
            raise ControlError(ErrorCode.UNAVAILABLE, f"{op!r} needs the running daemon")
        return self.run(handler(args))

    async def _open(self, *, create: bool) -> None:
        if self._store is not None:
            return
        self._store = await Store.open(self.store_path(create=create))
        self.touched = True
        ops = GatewayOps.for_store(self.config, self._store)
        self._ops = {
            "sync.status": ops.sync_status,
            "sync.parked": ops.sync_parked,
            "sync.retry": ops.sync_retry,
            "events": ops.events,
        }

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()


def backend(
    config: Config, json_mode: bool, *, say: bool = True
) -> AbstractContextManager[Backend]:
    """The running daemon, else its store (said on stderr unless ``say`` is false)."""
    notice = f"edgegw is not running: reading its store {config.store.path} directly"
    return daemon_or_store(config, json_mode, _StatusStore, notice=notice if say else None)


# ------------------------------------------------------------------------------ commands


def status(config: ConfigOption = DEFAULT_CONFIG_PATH, as_json: JsonOption = False) -> None:
    """Is the gateway running, is the cloud reachable, which chargers are connected."""
    cfg = load_config_or_fail(config, json_mode=as_json)
    with backend(cfg, as_json, say=False) as status_backend, op_errors(as_json):
        if status_backend.source == "daemon":
            result = {"ok": True, "running": True, **status_backend.call("status")}
            result["sync"] = _totals(status_backend.call("sync.status"))
            result["pending_chargers"] = len(status_backend.call("chargers.pending"))
            result["wrong_urls"] = _count_of(status_backend, "chargers.wrong_urls")
        else:
            result = {
                "ok": False,
                "running": False,
                "socket": str(cfg.control.socket),
                "hint": START_HINT,
                "cloud": cfg.cloud.url if cfg.cloud else None,
                "configured_chargers": [c.id for c in cfg.chargers],
                "sync": _totals(status_backend.call("sync.status")),
            }
    emit(result, as_json, _render_status)
    if not result["running"]:
        raise typer.Exit(EXIT_DAEMON_DOWN)


def _count_of(used: Backend, op: str) -> int:
    """How many ``op`` lists (0 from a daemon too old to have it)."""
    try:
        return len(used.call(op))
    except RemoteError as exc:
        if exc.code == ErrorCode.UNKNOWN_OP:
            return 0
        raise


def _totals(sync: dict[str, Any]) -> dict[str, Any]:
    return {"queued": sync["queued"], "parked": sync["parked"]}


@sync_app.command("status")
def sync_status(config: ConfigOption = DEFAULT_CONFIG_PATH, as_json: JsonOption = False) -> None:
    """Per charger: messages queued for the cloud, parked ones, age of the oldest."""
    emit(_ask(config, as_json, "sync.status"), as_json, _render_sync)


@sync_app.command("parked")
def sync_parked(
    charger: ChargerFilterOption = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Messages the cloud kept refusing: kept, not sent again until `edgegw sync retry`."""
    result = _ask(config, as_json, "sync.parked", key="parked", charger=charger)
    emit(result, as_json, _render_parked)


@sync_app.command("retry")
def sync_retry(
    charger: ChargerFilterOption = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Put parked messages back in the queue (after the cloud was fixed)."""
    result = _ask(config, as_json, "sync.retry", extra={"charger": charger}, charger=charger)
    emit(result, as_json, _render_retry)


def events(  # noqa: PLR0917 (typer options)
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first.")] = 50,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            "-k",
            metavar="KIND",
            help="Only this kind (repeatable); a prefix matches its kinds: session, card, "
            "charger, meter, limit, handshake, commission ...",
        ),
    ] = None,
    charger: ChargerFilterOption = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only since then: 30m, 2h, 7d, or a date (2026-05-01 or ISO time)."),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Then print new events as they happen (Ctrl-C ends)."),
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """The site's journal, newest first: sessions, refused cards, connections, meter,
    limits, refused handshakes, and what operators and commissioning did. Kept across
    restarts (the newest 10000)."""
    if not 1 <= limit <= 10000:
        fail("--limit must be between 1 and 10000", EXIT_USAGE, json_mode=as_json)
    since_at = None if since is None else parse_since(since, time.time(), json_mode=as_json)
    args: dict[str, Any] = {"limit": limit, "kinds": kind or [], "charger": charger}
    if since_at is not None:
        args["since"] = since_at
    if not follow:
        filtered = bool(kind or charger or since)
        result = _ask(config, as_json, "events", key="events", extra={"filtered": filtered}, **args)
        emit(result, as_json, _render_events)
        return
    cfg = load_config_or_fail(config, json_mode=as_json)
    with op_errors(as_json):
        client = running_daemon(cfg)
    if client is None:
        fail(
            "--follow needs the running daemon",
            EXIT_DAEMON_DOWN,
            f"{START_HINT}; without --follow the recorded events are read from its store",
            json_mode=as_json,
        )
    where = EventFilter(tuple(kind or ()), charger, since_at)
    try:
        with op_errors(as_json):
            asyncio.run(_follow(cfg.control.socket, args, where, as_json))
    except KeyboardInterrupt:
        pass


async def _follow(
    socket: Path,
    args: dict[str, Any],
    where: EventFilter,
    as_json: bool,
    out: Callable[[str], None] = typer.echo,
) -> None:
    """Print the newest events (oldest first), then every new one that matches ``where``."""
    async with await ControlClient.connect(socket) as client:
        await client.subscribe(OPS_EVENTS_TOPIC)  # first: nothing between the two is missed
        shown = list(reversed(await client.call("events", **args)))
        seen = {_identity(e) for e in shown}
        for entry in shown:
            out(_follow_line(entry, as_json))
        async for event in client.events():
            entry = event.data
            if not isinstance(entry, dict) or _identity(entry) in seen:
                continue
            seen.clear()  # only the first read can repeat an entry
            if where.matches(_entry(entry)):
                out(_follow_line(entry, as_json))


def _identity(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry.get("at"), entry.get("kind"), entry.get("charger"), entry.get("message"))


def _entry(entry: dict[str, Any]) -> JournalEntry:
    return JournalEntry(
        float(entry.get("at") or 0), str(entry.get("kind")), "", entry.get("charger")
    )


def _follow_line(entry: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(entry, ensure_ascii=False)
    return (
        f"{_when(entry['at'])}  {entry['kind']:<20}  {entry['charger'] or '-':<12}  "
        f"{entry['message']}"
    )


def parse_since(text: str, now: float, *, json_mode: bool = False) -> float:
    """``30m``, ``2h``, ``7d``, ``90s`` ago, or a date / ISO time (local time unless it says)."""
    value = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].replace(".", "", 1).isdigit():
        return now - float(value[:-1]) * units[value[-1]]
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"--since {text!r}: not a duration or a date",
            EXIT_USAGE,
            "use 30m, 2h, 7d, 2026-05-01 or 2026-05-01T08:00",
            json_mode=json_mode,
        )
    return parsed.timestamp()


def _ask(config_path: Path, json_mode: bool, op: str, /, **kwargs: Any) -> dict[str, Any]:
    """``op`` of the daemon, else of its store, as the command's result (see :func:`call_op`)."""
    cfg = load_config_or_fail(config_path, json_mode=json_mode)
    return call_op(backend(cfg, json_mode), json_mode, op, **kwargs)


# ------------------------------------------------------------------------------ text output


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


def _render_status(result: dict[str, Any]) -> str:
    sync = result["sync"]
    if not result["running"]:
        lines = [
            f"edgegw is NOT running (nothing answers at {result['socket']}); {result['hint']}.",
            f"Configured: {len(result['configured_chargers'])} charger(s), "
            + (f"cloud {result['cloud']}" if result["cloud"] else "standalone (no cloud)")
            + ".",
        ]
        if sync["queued"] or sync["parked"]:
            lines.append(
                f"The store holds {sync['queued']} message(s) for the cloud and "
                f"{sync['parked']} parked; they are sent when edgegw runs."
            )
        return "\n".join(lines)
    cloud = f"relaying to {result['cloud']}" if result["cloud"] else "standalone (no cloud)"
    lines = [f"edgegw {result['version']} running for {_duration(result['uptime_s'])}, {cloud}."]
    chargers = result["chargers"]
    if chargers:
        rows = [("CHARGER", "CONNECTED", "CLOUD LINK", "MODEL", "ADDRESS", "LAST SEEN")]
        rows += [
            (
                c["id"],
                "yes" if c["connected"] else "no",
                c["cloud_link"],
                " ".join(x for x in (c["vendor"], c["model"]) if x) or "-",
                c["address"] or "-",
                _when(c["last_seen"]),
            )
            for c in chargers
        ]
        lines += table(rows)
    else:
        lines.append("No charger has connected yet.")
    if sync["queued"] or sync["parked"]:
        lines.append(
            f"Waiting for the cloud: {sync['queued']} queued, {sync['parked']} parked "
            "(`edgegw sync status`)."
        )
    if result["pending_chargers"]:
        lines.append(
            f"{result['pending_chargers']} unknown identit"
            f"{'y' if result['pending_chargers'] == 1 else 'ies'} tried to connect: "
            "`edgegw chargers pending`."
        )
    wrong = result.get("wrong_urls", 0)
    if wrong:
        lines.append(
            f"{plural(wrong, 'connection')} refused for a wrong URL (the charger's OCPP server "
            "address): `edgegw chargers pending` says which URL to set."
        )
    return "\n".join(lines)


def _render_sync(result: dict[str, Any]) -> str:
    chargers = result["chargers"]
    lines = []
    if chargers:
        rows = [("CHARGER", "CONNECTED", "CLOUD LINK", "QUEUED", "PARKED", "OLDEST")]
        rows += [
            (
                c["id"],
                "yes" if c["connected"] else "no",
                c["cloud_link"],
                str(c["queued"]),
                str(c["parked"]),
                "-" if c["oldest_age_s"] is None else _duration(c["oldest_age_s"]),
            )
            for c in chargers
        ]
        lines += table(rows)
    if not result["queued"] and not result["parked"]:
        lines.append("Nothing waits for the cloud: every message was delivered.")
    else:
        lines.append(f"In total {result['queued']} queued, {result['parked']} parked.")
        if result["parked"]:
            lines.append(
                "Parked messages were refused by the cloud: see `edgegw sync parked`, fix the "
                "cause, then `edgegw sync retry`."
            )
    if result["source"] == "store" and result["queued"]:
        lines.append("edgegw is not running: the queue is sent when it starts.")
    return "\n".join(lines)


def _render_parked(result: dict[str, Any]) -> str:
    parked = result["parked"]
    if not parked:
        return "No parked messages: the cloud took everything it was sent."
    lines = []
    for p in parked:
        payload = json.dumps(p["payload"], separators=(",", ":"))
        if len(payload) > 100:
            payload = payload[:97] + "..."
        lines += [
            f"#{p['seq']} {p['charger']} {p['action']} queued {_when(p['queued_at'])}, "
            f"{p['attempts']} attempt(s)",
            f"    cloud said: {p['error'] or '-'}",
            f"    {payload}",
        ]
    lines.append(f"{len(parked)} parked message(s). After fixing the cause: `edgegw sync retry`.")
    return "\n".join(lines)


def _render_retry(result: dict[str, Any]) -> str:
    count = result["requeued"]
    who = f" of {result['charger']}" if result["charger"] else ""
    if not count:
        return f"No parked messages{who} to retry."
    if result["source"] == "daemon":
        return f"Put {count} parked message(s){who} back in the queue; they are being sent now."
    return (
        f"Put {count} parked message(s){who} back in the queue in the store; edgegw sends "
        "them when it starts."
    )


def _render_events(result: dict[str, Any]) -> str:
    found = result["events"]
    if not found:
        return "No events match." if result.get("filtered") else "No events recorded yet."
    rows = [("WHEN", "KIND", "CHARGER", "MESSAGE")]
    rows += [(_when(e["at"]), e["kind"], e["charger"] or "-", e["message"]) for e in found]
    return "\n".join(table(rows))
