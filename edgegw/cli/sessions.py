"""``edgegw sessions``: list, export and the monthly energy report per card and owner.

For sites that bill residents themselves: no cloud needed. The commands ask the running daemon
over its control socket. When the daemon is stopped they read its database file directly
(read-only; it may need sudo, the file belongs to the daemon's user) and say so, so an installer
can still export. Idtags are matched to the installer's cards whatever format each charger
reports them in.

``--owner NAME`` keeps the sessions of the cards NAME holds today (the name whole, in any case),
for billing one resident; an owner no card has is an error, not an empty list, so a typo never
looks like "did not charge". The sessions no owner can be billed for (unknown cards, cards
enrolled without an owner: the report's "(no owner / unknown cards)" row) have their own flag,
``--no-owner``, rather than ``--owner ""``: in a script ``--owner "$NAME"`` with an unset
variable is then refused instead of quietly exporting the unattributed sessions.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Callable, Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_FAILURE,
    EXIT_USAGE,
    ChargerFilterOption,
    ConfigOption,
    DaemonClient,
    JsonOption,
    control_errors,
    emit,
    fail,
    load_config_or_fail,
    note,
    running_daemon,
    table,
    write_output,
)
from edgegw.config import Config
from edgegw.store.db import StoreError
from edgegw.store.sessions import (
    CardResolver,
    Month,
    SessionFilter,
    SessionQueries,
    iso_utc,
    open_read_only,
    parse_time,
)
from edgegw.store.tariffs import TariffError

sessions_app = typer.Typer(
    help="Charging sessions: list, export (CSV/JSON), monthly energy report per card/owner.",
    no_args_is_help=True,
)

T = TypeVar("T")
_PAGE = 500  # sessions per control call: well under the protocol's line limit

SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Sessions going on at or after this time (ISO 8601: 2026-01-01 or "
        "2026-01-01T08:00:00Z; no zone means UTC).",
    ),
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Sessions started before this time (ISO 8601).")
]
CardOption = Annotated[
    str | None,
    typer.Option("--card", help="Only this card (its id in any format a charger reports)."),
]
OwnerOption = Annotated[
    str | None,
    typer.Option(
        "--owner",
        help="Only the sessions of the cards this owner holds (the whole name, any case; "
        "as `edgegw cards list` shows it).",
    ),
]
NoOwnerOption = Annotated[
    bool,
    typer.Option(
        "--no-owner",
        help="Only the sessions of unknown cards and of cards without an owner "
        "(what the report counts under no owner).",
    ),
]
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
]


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


class ReportFormat(StrEnum):
    TEXT = "text"
    CSV = "csv"
    JSON = "json"


# ------------------------------------------------------------------------------ sources


class _Source(Protocol):
    name: str
    """``daemon`` or ``database``: where the answer came from."""

    def sessions(self, filters: dict[str, Any], *, limit: int | None, order: str) -> list[Any]:
        """Session dicts (see ``Session.to_json``)."""

    def report(self, month: str, tz: str) -> dict[str, Any]: ...


class _Daemon:
    name = "daemon"

    def __init__(self, client: DaemonClient, json_mode: bool) -> None:
        self._client = client
        self._json = json_mode

    def sessions(self, filters: dict[str, Any], *, limit: int | None, order: str) -> list[Any]:
        found: list[Any] = []
        after: int | None = None
        while limit is None or len(found) < limit:
            size = _PAGE if limit is None else min(_PAGE, limit - len(found))
            with control_errors(json_mode=self._json):
                page = self._client.call(
                    "sessions.list", **filters, limit=size, order=order, after=after
                )
            found.extend(page["sessions"])
            after = page["next"]
            if after is None:
                break
        return found

    def report(self, month: str, tz: str) -> dict[str, Any]:
        with control_errors(json_mode=self._json):
            result: dict[str, Any] = self._client.call("sessions.report", month=month, tz=tz)
        return result


class _Database:
    """The daemon's database file, read-only, for when the daemon is stopped."""

    name = "database"

    def __init__(self, config: Config, json_mode: bool) -> None:
        self._config = config
        self._json = json_mode

    def sessions(self, filters: dict[str, Any], *, limit: int | None, order: str) -> list[Any]:
        async def read() -> list[Any]:
            async with open_read_only(self._config.store.path) as conn:
                cards = await CardResolver.load(conn, self._config)
                card = filters.get("card")
                owner = filters.get("owner")
                try:
                    card_id = None if card is None else cards.card_id(card)
                    if owner is not None:
                        cards.check_owner(owner)
                except ValueError as exc:
                    fail(str(exc), EXIT_USAGE, json_mode=self._json)
                where = SessionFilter(
                    since=filters.get("since"),
                    until=filters.get("until"),
                    card=card_id,
                    charger=filters.get("charger"),
                    owner=owner,
                    no_owner=filters.get("no_owner", False),
                )
                found, _ = await SessionQueries(conn, cards).page(
                    where, limit=limit, newest_first=order == "newest"
                )
                return [s.to_json() for s in found]

        return self._run(read)

    def report(self, month: str, tz: str) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            async with open_read_only(self._config.store.path) as conn:
                cards = await CardResolver.load(conn, self._config)
                queries = SessionQueries(conn, cards)
                report = await queries.report(Month.parse(month), ZoneInfo(tz), now=time.time())
                return report.to_json()

        return self._run(read)

    def _run(self, read: Callable[[], Coroutine[Any, Any, T]]) -> T:
        try:
            return asyncio.run(read())
        except StoreError as exc:
            fail(str(exc), EXIT_FAILURE, json_mode=self._json)
        except TariffError as exc:
            fail(f"[[tariffs]]: {exc}", EXIT_FAILURE, json_mode=self._json)


def _source(config_path: Path, json_mode: bool) -> _Source:
    config = load_config_or_fail(config_path, json_mode=json_mode)
    with control_errors(json_mode=json_mode):
        client = running_daemon(config)
    if client is not None:
        return _Daemon(client, json_mode)
    note(
        f"edgegw is not running: reading its database {config.store.path} directly "
        "(read-only; sessions are as the daemon last recorded them)"
    )
    return _Database(config, json_mode)


def _filters(
    *,
    since: str | None,
    until: str | None,
    card: str | None,
    charger: str | None,
    owner: str | None,
    no_owner: bool,
) -> dict[str, Any]:
    """The ``sessions.list`` arguments; only those asked for (the export's JSON shows them)."""
    filters: dict[str, Any] = {}
    for name, text in (("since", since), ("until", until)):
        if text is not None:
            try:
                filters[name] = parse_time(text)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint=f"--{name}") from None
    if "since" in filters and "until" in filters and filters["since"] > filters["until"]:
        raise typer.BadParameter(f"--since {since} is after --until {until}")
    if card is not None:
        filters["card"] = card
    if charger is not None:
        filters["charger"] = charger
    if owner is not None:
        if not owner.strip():
            raise typer.BadParameter(
                "the name is empty; give an owner's name, or use --no-owner for the "
                "sessions of unknown cards and of cards without an owner",
                param_hint="--owner",
            )
        if no_owner:
            raise typer.BadParameter("--owner and --no-owner together match nothing; use one")
        filters["owner"] = owner.strip()
    if no_owner:
        filters["no_owner"] = True
    return filters


# ------------------------------------------------------------------------------ commands


@sessions_app.command("list")
def list_sessions(
    *,
    since: SinceOption = None,
    until: UntilOption = None,
    card: CardOption = None,
    charger: ChargerFilterOption = None,
    owner: OwnerOption = None,
    no_owner: NoOwnerOption = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1)] = 50,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """List charging sessions, newest first.

    Filters combine, e.g. --owner "Flat 1" --since 2026-01-01 --until 2026-02-01 (the
    sessions of Flat 1's cards going on in January). The owner is the card's owner today;
    --no-owner lists the sessions of unknown cards and of cards without one.
    """
    filters = _filters(
        since=since, until=until, card=card, charger=charger, owner=owner, no_owner=no_owner
    )
    source = _source(config, as_json)
    found = source.sessions(filters, limit=limit, order="newest")
    emit({"source": source.name, "sessions": found}, as_json, _render_list)


@sessions_app.command("export")
def export_sessions(
    *,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="File format.")] = ExportFormat.CSV,
    output: OutputOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    card: CardOption = None,
    charger: ChargerFilterOption = None,
    owner: OwnerOption = None,
    no_owner: NoOwnerOption = False,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
) -> None:
    """Export every matching session, oldest first (CSV for spreadsheets, or JSON).

    Same filters as `sessions list`, e.g. --owner "Flat 1" --since 2026-01-01 --until
    2026-02-01. For monthly totals per owner, see `sessions report`.
    """
    filters = _filters(
        since=since, until=until, card=card, charger=charger, owner=owner, no_owner=no_owner
    )
    source = _source(config, False)
    found = sorted(
        source.sessions(filters, limit=None, order="oldest"),
        key=lambda s: (s["started_ts"], s["id"]),
    )
    if fmt is ExportFormat.CSV:
        text = _sessions_csv(found)
    else:
        document = {
            "exported_at": iso_utc(time.time()),
            "source": source.name,
            "filters": {
                k: iso_utc(v) if k in ("since", "until") else v for k, v in filters.items()
            },
            "sessions": found,
        }
        text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    write_output(text, output)
    if output is not None:
        note(f"wrote {len(found)} session(s) to {output} (from the {source.name})")


@sessions_app.command("report")
def report(
    *,
    month: Annotated[str, typer.Option("--month", help="The month, YYYY-MM.")],
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format.")] = (
        ReportFormat.TEXT
    ),
    tz: Annotated[
        str, typer.Option("--tz", help="Time zone of the month's bounds, e.g. Europe/Brussels.")
    ] = "UTC",
    output: OutputOption = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Energy, sessions and hours per card and per owner for one month (for billing).

    Finished sessions count in the month they ended; open ones are listed apart.
    """
    try:
        Month.parse(month)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--month") from None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(
            f"unknown time zone {tz!r}; use an IANA name such as Europe/Brussels",
            param_hint="--tz",
        ) from None
    if as_json:
        fmt = ReportFormat.JSON
    json_mode = fmt is ReportFormat.JSON
    source = _source(config, json_mode)
    data = {"source": source.name, **source.report(month, tz)}
    if fmt is ReportFormat.JSON:
        text = json.dumps(data, ensure_ascii=False) + "\n"
    elif fmt is ReportFormat.CSV:
        text = _report_csv(data)
    else:
        text = _render_report(data) + "\n"
    write_output(text, output)
    uncounted = len(data["open_at_month_end"]) + len(data["unclosed"])
    if fmt is not ReportFormat.TEXT and uncounted:
        note(f"{uncounted} session(s) not counted (open at month end or unclosed); see --json")
    if output is not None:
        note(f"wrote the {month} report to {output} (from the {source.name})")


# ------------------------------------------------------------------------------ rendering


def _who(s: dict[str, Any]) -> str:
    if s["card"] is None:
        return f"{s['id_tag']} (unknown card)"
    who = ", ".join(x for x in (s["owner"], s["label"]) if x)
    return f"{s['card']} ({who})" if who else s["card"]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}"


def _kwh(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _render_list(data: dict[str, Any]) -> str:
    sessions = data["sessions"]
    if not sessions:
        return "No sessions match."
    rows = [("ID", "CHARGER", "CARD", "STARTED (UTC)", "DURATION", "KWH", "STATE")]
    for s in sessions:
        rows.append(
            (
                str(s["transaction_id"] if s["transaction_id"] is not None else "-"),
                f"{s['charger']}/{s['connector']}",
                _who(s),
                s["started_at"],
                _duration(s["duration_s"]),
                _kwh(s["energy_kwh"]),
                s["state"],
            )
        )
    return "\n".join([*table(rows), f"{len(sessions)} session(s)"])


def _render_report(data: dict[str, Any]) -> str:
    out = [
        f"Charging report {data['month']} ({data['timezone']}): {data['start']} to {data['end']}",
        "Finished sessions, each counted in the month it ended.",
        "",
    ]
    totals = data["totals"]
    currency = data.get("currency")
    priced: tuple[str, ...] = (currency,) if currency else ()

    def cost(amounts: dict[str, Any]) -> tuple[str, ...]:
        return (_money(amounts.get("cost")) or "-",) if currency else ()

    if data["cards"]:
        rows = [("OWNER", "CARD", "LABEL", "SESSIONS", "KWH", "HOURS", *priced)]
        for c in data["cards"]:
            rows.append(
                (
                    c["owner"] or "-",
                    c["card"] if c["known"] else f"{c['id_tag']} (unknown card)",
                    c["label"] or "",
                    str(c["sessions"]),
                    f"{c['energy_kwh']:.3f}",
                    f"{c['hours']:.2f}",
                    *cost(c),
                )
            )
        rows.append(
            (
                "TOTAL",
                "",
                "",
                str(totals["sessions"]),
                f"{totals['energy_kwh']:.3f}",
                f"{totals['hours']:.2f}",
                *cost(totals),
            )
        )
        out += table(rows, right={3, 4, 5, 6})
        out += ["", "Per owner:"]
        owner_rows = [
            (
                o["owner"] or "(no owner / unknown cards)",
                f"{len(o['cards'])} card(s)",
                f"{o['sessions']} session(s)",
                f"{o['energy_kwh']:.3f} kWh",
                f"{o['hours']:.2f} h",
                *(f"{c} {currency}" for c in cost(o)),
            )
            for o in data["owners"]
        ]
        out += table(owner_rows, right={1, 2, 3, 4, 5})
        if data.get("groups"):
            out += ["", "Per card group:"]
            out += table(
                [
                    (
                        g["group"],
                        f"{len(g['cards'])} card(s)",
                        f"{g['sessions']} session(s)",
                        f"{g['energy_kwh']:.3f} kWh",
                        f"{g['hours']:.2f} h",
                        *(f"{c} {currency}" for c in cost(g)),
                    )
                    for g in data["groups"]
                ],
                right={1, 2, 3, 4, 5},
            )
    else:
        out.append("No session finished in this month.")
    if data["meter_backwards"]:
        out.append(
            f"{data['meter_backwards']} session(s) reported a meter stop below the start: "
            "counted as 0 kWh."
        )
    opened = data["open_at_month_end"]
    out += ["", f"Still open at the month's end (not counted here): {len(opened)}"]
    out += [
        f"  {s['charger']}/{s['connector']}  {_who(s)}  since {s['started_at']}" for s in opened
    ]
    unclosed = data["unclosed"]
    if unclosed:
        out += [
            "",
            f"Unclosed (no StopTransaction, energy unknown, not counted): {len(unclosed)}",
        ]
        out += [
            f"  {s['charger']}/{s['connector']}  {_who(s)}  started {s['started_at']}"
            for s in unclosed
        ]
    if data["source"] == "database":
        out += ["", "(read from the database file: the daemon is not running)"]
    return "\n".join(out)


_SESSION_COLUMNS = (
    "id",
    "charger",
    "connector",
    "transaction_id",
    "cloud_transaction_id",
    "mode",
    "id_tag",
    "card",
    "owner",
    "label",
    "state",
    "started_at",
    "stopped_at",
    "duration_s",
    "meter_start_wh",
    "meter_stop_wh",
    "energy_wh",
    "energy_kwh",
    "stop_reason",
)
_TEXT_COLUMNS = frozenset({"charger", "id_tag", "card", "owner", "label", "stop_reason"})


def _cell(value: Any, text: bool) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with '."""
    if value is None:
        return ""
    if text and isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _sessions_csv(sessions: list[dict[str, Any]]) -> str:
    """One row per session; with tariffs configured, its tariff and cost too, and whose
    clock timed the cost (``charger``, or ``gateway: start`` when the charger's was far off)."""
    columns: tuple[str, ...] = _SESSION_COLUMNS
    if any("tariff" in s for s in sessions):
        columns = (*columns, "tariff", "cost", "cost_times")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for s in sessions:
        writer.writerow(
            [
                _money(s.get(c)) if c == "cost" else _cell(s.get(c), c in _TEXT_COLUMNS)
                for c in columns
            ]
        )
    return buffer.getvalue()


def _report_csv(data: dict[str, Any]) -> str:
    """Per card, then the total; with tariffs, the cost in the currency's column."""
    currency = data.get("currency")
    cost = [f"cost_{currency}"] if currency else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "month",
            "owner",
            "card",
            "id_tag",
            "known",
            "label",
            "sessions",
            "energy_kwh",
            "hours",
            *cost,
        ]
    )
    for c in data["cards"]:
        writer.writerow(
            [
                data["month"],
                _cell(c["owner"], True),
                _cell(c["card"], True),
                _cell(c["id_tag"], True),
                "yes" if c["known"] else "no",
                _cell(c["label"], True),
                c["sessions"],
                f"{c['energy_kwh']:.3f}",
                f"{c['hours']:.2f}",
                *([_money(c.get("cost"))] if currency else []),
            ]
        )
    t = data["totals"]
    writer.writerow(
        [
            data["month"],
            "TOTAL",
            "",
            "",
            "",
            "",
            t["sessions"],
            f"{t['energy_kwh']:.3f}",
            f"{t['hours']:.2f}",
            *([_money(t.get("cost"))] if currency else []),
        ]
    )
    return buffer.getvalue()


def _money(amount: float | None) -> str:
    return "" if amount is None else f"{amount:.2f}"
