"""``edgegw cards``: the site's own RFID cards — list, show, add, update, block, import, export.

When the daemon runs, every command goes through it (:mod:`edgegw.control.card_ops`): a block
takes effect at the next tap, also while the cloud accepts the card (unless
``auth.site_overrides_cloud`` is false), and chargers that hold a local list get the change
pushed; the command waits a few seconds (``--wait``) and says which chargers have it. When the
daemon is not running, the command opens the store itself with the same code, so an installer
can prepare the cards before the first start; the output says which of the two happened.

Card ids can be typed as any reader or charger prints them: ``E43AC9D2``, ``e4:3a:c9:d2``,
reversed hex or the decimal number on the card with ``--format``, or a token
(``--format token``). ``edgegw cards show`` lists how each charger of the site will report a
card.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any

import typer

from edgegw.auth.authorizer import Authorizer
from edgegw.auth.idtags import IdTagFormat
from edgegw.cli.backend import (
    Backend,
    StoreBackend,
    answered,
    call_op,
    daemon_or_store,
    op_errors,
)
from edgegw.cli.completion import complete_charger
from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_FAILURE,
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    emit,
    fail,
    load_config_or_fail,
    note,
    table,
    write_output,
)
from edgegw.config import Config
from edgegw.control.card_ops import MAX_PAGE, CardService
from edgegw.control.protocol import MAX_LINE
from edgegw.store.db import Database

cards_app = typer.Typer(
    help="The site's RFID cards: list, show, add, update, block, unblock, remove, import, export.",
    no_args_is_help=True,
)

_FORMATS = ["token", *(f.value for f in IdTagFormat if f is not IdTagFormat.AUTO)]
_CSV_LIMIT = MAX_LINE - 64 * 1024  # room for the request around the CSV text
DEFAULT_WAIT = 5.0


def _complete_format(incomplete: str) -> list[str]:
    return [f for f in _FORMATS if f.startswith(incomplete)]


CardArgument = Annotated[
    str,
    typer.Argument(
        help="Card id as printed or read: E43AC9D2, e4:3a:c9:d2, 3536403172 (with --format "
        "dec_le), or a token with --format token.",
        show_default=False,
    ),
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help=f"How the card id is written: {', '.join(_FORMATS)} (default: hex, any case and "
        "separators).",
        autocompletion=_complete_format,
    ),
]
WaitOption = Annotated[
    float,
    typer.Option(
        "--wait",
        min=0,
        max=30,
        help="Seconds to wait for chargers holding a local list to confirm the change.",
    ),
]
OwnerOption = Annotated[str | None, typer.Option("--owner", help="Who holds the card.")]
LabelOption = Annotated[str | None, typer.Option("--label", help="A note: flat, bay, vehicle, ...")]
ExpiryOption = Annotated[
    str | None,
    typer.Option(
        "--expiry",
        help="Last valid day (YYYY-MM-DD, through that day UTC) or an ISO date and time.",
    ),
]
ChargersOption = Annotated[
    list[str] | None,
    typer.Option(
        "--charger",
        help="Only on this charger (repeat for several; default: every charger).",
        autocompletion=complete_charger,
    ),
]
ChargerGroupsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--charger-group",
        help="Only on the chargers of this charger group (repeat for several; with --charger "
        "too). See `edgegw cards groups`.",
    ),
]
UntilOption = Annotated[
    str,
    typer.Option(
        "--until",
        help="When the share ends, in the site's time: 'sunday 18:00', '2026-12-13 18:00', "
        "2026-12-13 (through that day) or an ISO date and time.",
        show_default=False,
    ),
]
ParentOption = Annotated[
    str | None, typer.Option("--parent", help="Group id (OCPP parentIdTag) shared by cards.")
]
StatusOption = Annotated[
    str | None,
    typer.Option("--status", help="Accepted, Blocked, Expired or Invalid."),
]


# ------------------------------------------------------------------------------ backends


class _CardStore(StoreBackend):
    """The store opened by the CLI itself, answered by the same :class:`CardService`."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._db: Database | None = None
        self._auth: Authorizer | None = None
        self._service: CardService | None = None

    def call(self, op: str, /, **args: Any) -> Any:
        writes = op not in ("cards.list", "cards.show", "cards.export", "cards.groups")
        path = self.config.store.path
        if writes and self._db is None and Path(f"{path}-shm").exists():
            note(
                f"warning: {path} looks open in another process; if an edgegw runs with "
                "another configuration, it sees this change only after a restart"
            )
        service = self.run(self._open(create=writes))
        if writes:
            self.touched = True
        return self.run(service.run(op, args))

    async def _open(self, *, create: bool) -> CardService:
        if self._service is not None:
            return self._service
        cfg = self.config
        self._db = await Database.open(self.store_path(create=create))
        formats = {c.id: IdTagFormat(c.idtag_format) for c in cfg.chargers if c.idtag_format}
        self._auth = await Authorizer.open(self._db, cfg.auth, formats=formats)
        self._service = CardService(self._auth, cfg)
        return self._service

    async def close(self) -> None:
        try:
            if self._auth is not None:
                await self._auth.close()
        finally:
            if self._db is not None:
                await self._db.close()


def backend(config_path: Path, json_mode: bool) -> AbstractContextManager[Backend]:
    """The daemon if it runs, else the store; says on stderr when it is the store."""
    config = load_config_or_fail(config_path, json_mode=json_mode)
    return daemon_or_store(
        config,
        json_mode,
        _CardStore,
        notice=f"edgegw is not running: working on its store {config.store.path} directly; "
        "changes take effect when it starts",
    )


# ------------------------------------------------------------------------------ commands


@cards_app.command("list")
def list_cards(
    text: Annotated[
        str | None,
        typer.Argument(help="Only cards with this text in id, owner, label or chargers."),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="Only Accepted, Blocked, Expired (also past expiry) or Invalid."
        ),
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """List the enrolled cards."""
    cards: list[dict[str, Any]] = []
    with backend(config, as_json) as cards_backend, op_errors(as_json):
        while True:
            page = cards_backend.call(
                "cards.list", text=text, status=status, offset=len(cards), limit=MAX_PAGE
            )
            cards += page["cards"]
            if not page["cards"] or len(cards) >= page["matched"]:
                break
        result = {
            "ok": True,
            "source": cards_backend.source,
            "total": page["total"],
            "matched": page["matched"],
            "cards": cards,
        }
    emit(result, as_json, _render_list)


@cards_app.command("show")
def show_card(
    card: CardArgument,
    *,
    fmt: FormatOption = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """One card: its details, every form chargers report it in, and how each charger will."""
    result = call_op(backend(config, as_json), as_json, "cards.show", card=card, format=fmt)
    emit(result, as_json, _render_show)


@cards_app.command("add")
def add_card(
    card: CardArgument,
    *,
    fmt: FormatOption = None,
    owner: OwnerOption = None,
    label: LabelOption = None,
    expiry: ExpiryOption = None,
    chargers: ChargersOption = None,
    charger_groups: ChargerGroupsOption = None,
    parent: ParentOption = None,
    status: StatusOption = None,
    wait: WaitOption = DEFAULT_WAIT,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Enrol a card (Accepted unless --status says otherwise)."""
    args = {
        "card": card,
        "format": fmt,
        "owner": owner,
        "label": label,
        "expiry": expiry,
        "chargers": chargers or None,
        "charger_groups": charger_groups or None,
        "parent": parent,
        "status": status,
        "wait": wait,
    }
    _change("cards.add", args, config, as_json)


@cards_app.command("update")
def update_card(
    card: CardArgument,
    *,
    fmt: FormatOption = None,
    owner: OwnerOption = None,
    label: LabelOption = None,
    expiry: ExpiryOption = None,
    no_expiry: Annotated[
        bool, typer.Option("--no-expiry", help="The card no longer expires.")
    ] = False,
    chargers: ChargersOption = None,
    charger_groups: ChargerGroupsOption = None,
    all_chargers: Annotated[
        bool, typer.Option("--all-chargers", help="The card works on every charger again.")
    ] = False,
    parent: ParentOption = None,
    no_parent: Annotated[bool, typer.Option("--no-parent", help="Leave its group.")] = False,
    status: StatusOption = None,
    wait: WaitOption = DEFAULT_WAIT,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Change an enrolled card: owner, label, expiry, chargers, group or status."""
    for flag, given, value in (
        ("--no-expiry", no_expiry, expiry),
        ("--all-chargers", all_chargers, chargers or charger_groups),
        ("--no-parent", no_parent, parent),
    ):
        if given and value:
            fail(f"{flag} contradicts the value given with it", EXIT_USAGE, json_mode=as_json)
    args: dict[str, Any] = {
        "card": card,
        "format": fmt,
        "owner": owner,
        "label": label,
        "expiry": "" if no_expiry else expiry,
        "chargers": [] if all_chargers else (chargers or None),
        "charger_groups": None if all_chargers else (charger_groups or None),
        "parent": "" if no_parent else parent,
        "status": status,
        "wait": wait,
    }
    _change("cards.update", args, config, as_json)


def _simple_change(op: str, doc: str) -> Callable[..., None]:
    """``block``, ``unblock`` and ``remove``: the same arguments, one op each."""

    def command(
        card: CardArgument,
        *,
        fmt: FormatOption = None,
        wait: WaitOption = DEFAULT_WAIT,
        config: ConfigOption = DEFAULT_CONFIG_PATH,
        as_json: JsonOption = False,
    ) -> None:
        _change(op, {"card": card, "format": fmt, "wait": wait}, config, as_json)

    command.__doc__ = doc
    return command


cards_app.command("block")(
    _simple_change(
        "cards.block",
        "Block a card (a lost one): refused from the next tap, whatever the cloud answers, also\n"
        "by chargers' local lists.",
    )
)
cards_app.command("unblock")(_simple_change("cards.unblock", "Accept a blocked card again."))
cards_app.command("remove")(
    _simple_change(
        "cards.remove",
        "Forget a card. To refuse a lost card, block it instead: a removed card falls back to\n"
        "the cloud's answer or the site policy for unknown cards.",
    )
)


def _change(op: str, args: dict[str, Any], config: Path, as_json: bool) -> None:
    with backend(config, as_json) as cards_backend, op_errors(as_json):
        if cards_backend.source == "store":
            args = {**args, "wait": 0}
        result = answered(cards_backend, cards_backend.call(op, **args))
    emit(result, as_json, _render_change)


@cards_app.command("import")
def import_cards(
    file: Annotated[
        str,
        typer.Argument(
            help="CSV file (columns id, format, owner, label, status, expiry, chargers, "
            "parent, groups; only id is required), or - for stdin. With a groups column "
            "(e.g. residents;staff) each card is in exactly those card groups afterwards."
        ),
    ],
    *,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Remove the enrolled cards that are not in the file."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file and say what would change.")
    ] = False,
    wait: WaitOption = DEFAULT_WAIT,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Add or update cards from a CSV file. Broken lines are reported by number and skipped;
    the others are imported (with --replace, nothing is imported unless every line is good)."""
    text = _read_csv_file(file, as_json)
    with backend(config, as_json) as cards_backend, op_errors(as_json):
        if cards_backend.source == "daemon" and len(text.encode()) > _CSV_LIMIT:
            fail(
                f"{file} is {len(text.encode()) // 1024} KiB, more than one request to the "
                f"daemon carries ({_CSV_LIMIT // 1024} KiB)",
                EXIT_FAILURE,
                "split it into smaller files and import them one by one (without --replace)",
                json_mode=as_json,
            )
        done = cards_backend.call(
            "cards.import",
            csv=text,
            replace=replace,
            dry_run=dry_run,
            wait=wait if cards_backend.source == "daemon" else 0,
        )
    result = {"ok": not done["errors"], "source": cards_backend.source, "file": file, **done}
    emit(result, as_json, _render_import)
    if done["errors"]:
        raise typer.Exit(EXIT_FAILURE)


def _read_csv_file(file: str, json_mode: bool) -> str:
    try:
        if file == "-":
            return sys.stdin.read()
        return Path(file).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        fail(f"no file {file}", EXIT_USAGE, json_mode=json_mode)
    except UnicodeDecodeError:
        fail(
            f"{file} is not UTF-8 text",
            EXIT_USAGE,
            "save it from the spreadsheet as 'CSV UTF-8'",
            json_mode=json_mode,
        )
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}", EXIT_FAILURE, json_mode=json_mode)


@cards_app.command("export")
def export_cards(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
) -> None:
    """Write every enrolled card as CSV (the form `edgegw cards import` reads back)."""
    parts: list[str] = []
    exported = 0
    with backend(config, False) as cards_backend, op_errors(False):
        while True:
            page = cards_backend.call("cards.export", offset=exported, limit=MAX_PAGE)
            text = page["csv"]
            if parts:
                text = text.split("\n", 1)[1] if "\n" in text else ""
            parts.append(text)
            exported += page["count"]
            if not page["count"] or exported >= page["total"]:
                break
        source = cards_backend.source
    write_output("".join(parts), output)
    note(
        f"exported {exported} card(s) from the {source}"
        + ("" if output is None else f" to {output}")
    )


# ------------------------------------------------------------------------------ groups, shares


@cards_app.command("groups")
def list_groups(config: ConfigOption = DEFAULT_CONFIG_PATH, as_json: JsonOption = False) -> None:
    """Charger groups, card groups and shares."""
    result = call_op(backend(config, as_json), as_json, "cards.groups")
    emit(result, as_json, _render_groups)


@cards_app.command("charger-group")
def charger_group(
    name: Annotated[str, typer.Argument(help="Group name, e.g. garage-1 or visitors.")],
    chargers: Annotated[
        list[str] | None,
        typer.Argument(help="Its chargers (replace the group's).", autocompletion=complete_charger),
    ] = None,
    *,
    delete: Annotated[bool, typer.Option("--delete", help="Delete the group.")] = False,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Set a charger group (e.g. `garage-1 CP-A CP-B`) or delete it; cards, card groups and
    shares name it with --charger-group."""
    if delete == bool(chargers):
        fail("give the group's chargers, or --delete", EXIT_USAGE, json_mode=as_json)
    args = {"name": name, "chargers": chargers or [], "delete": delete}
    _groups_change("cards.charger_group", args, config, as_json)


@cards_app.command("group")
def card_group(
    name: Annotated[str, typer.Argument(help="Group name, e.g. residents, staff, fleet-acme.")],
    *,
    add: Annotated[
        list[str] | None, typer.Option("--add", help="Put this enrolled card in the group.")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="Take this card out of the group.")
    ] = None,
    chargers: ChargersOption = None,
    charger_groups: ChargerGroupsOption = None,
    all_chargers: Annotated[
        bool, typer.Option("--all-chargers", help="The group's cards work on every charger.")
    ] = False,
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete the group (its cards stay enrolled).")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Create or change a card group: its cards and the chargers they may use (a card's own
    --charger list wins over its groups')."""
    if all_chargers and (chargers or charger_groups):
        fail("--all-chargers contradicts --charger", EXIT_USAGE, json_mode=as_json)
    args = {
        "name": name,
        "add": add or [],
        "remove": remove or [],
        "chargers": [] if all_chargers else (chargers or None),
        "charger_groups": charger_groups or None,
        "all_chargers": all_chargers,
        "delete": delete,
    }
    _groups_change("cards.group", args, config, as_json)


@cards_app.command("share")
def share(
    card: Annotated[
        str | None, typer.Argument(help="The enrolled card to share (or --group).")
    ] = None,
    *,
    group: Annotated[
        str | None, typer.Option("--group", help="Share with every card of this card group.")
    ] = None,
    fmt: FormatOption = None,
    chargers: ChargersOption = None,
    charger_groups: ChargerGroupsOption = None,
    until: UntilOption,
    note: Annotated[str, typer.Option("--note", help="Who, why.")] = "",
    wait: WaitOption = DEFAULT_WAIT,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Allow a card (a guest's) or a card group on chargers until a time; it is refused there
    again once the share ends, whatever the cloud answers."""
    if (card is None) == (group is None):
        fail("give a card or --group (one of them)", EXIT_USAGE, json_mode=as_json)
    if not (chargers or charger_groups):
        fail("give --charger or --charger-group", EXIT_USAGE, json_mode=as_json)
    args = {
        "card": card,
        "format": fmt,
        "group": group,
        "chargers": chargers or [],
        "charger_groups": charger_groups or [],
        "until": until,
        "note": note,
        "wait": wait,
    }
    _groups_change("cards.share", args, config, as_json)


@cards_app.command("unshare")
def unshare(
    share_id: Annotated[int, typer.Argument(help="The share's number (`edgegw cards groups`).")],
    *,
    wait: WaitOption = DEFAULT_WAIT,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """End a share now."""
    _groups_change("cards.unshare", {"id": share_id, "wait": wait}, config, as_json)


def _groups_change(op: str, args: dict[str, Any], config: Path, as_json: bool) -> None:
    with backend(config, as_json) as cards_backend, op_errors(as_json):
        if cards_backend.source == "store" and "wait" in args:
            args = {**args, "wait": 0}
        result = answered(cards_backend, cards_backend.call(op, **args))
    emit(result, as_json, _render_groups_change)


def _render_groups(result: dict[str, Any]) -> str:
    lines = ["Charger groups:"]
    groups = result["charger_groups"]
    lines += [f"  {name:<16} {' '.join(chargers)}" for name, chargers in groups.items()]
    if not groups:
        lines.append("  none (`edgegw cards charger-group NAME CHARGER...`)")
    lines.append("Card groups:")
    for group in result["card_groups"]:
        where = _where_chargers(group["chargers"])
        lines.append(f"  {group['name']:<16} {len(group['cards'])} card(s), on {where}")
        lines += [f"    {card}" for card in group["cards"]]
    if not result["card_groups"]:
        lines.append("  none (`edgegw cards group NAME --add CARD`)")
    lines.append("Shares:")
    for item in result["shares"]:
        lines.append("  " + _share_line(item))
    if not result["shares"]:
        lines.append("  none (`edgegw cards share CARD --charger CP --until 'sunday 18:00'`)")
    return "\n".join(lines)


def _where_chargers(chargers: list[str] | None) -> str:
    return "every charger" if chargers is None else " ".join(chargers)


def _share_line(item: dict[str, Any]) -> str:
    who = item["card"] if item["card"] is not None else f"group {item['group']}"
    state = "until" if item["active"] else "ended"
    note = f"  ({item['note']})" if item["note"] else ""
    return f"#{item['id']} {who} on {' '.join(item['chargers'])}, {state} {item['until']}{note}"


def _render_groups_change(result: dict[str, Any]) -> str:
    action = result["action"]
    if action == "shared":
        lines = [
            f"Shared: {_share_line(result['share'])} {_where(result)}.",
            "Refused there again once it ends, whatever the cloud answers.",
        ]
    elif action == "unshared":
        lines = [f"Share #{result['id']} ended {_where(result)}."]
    else:
        lines = [f"Groups {action} {_where(result)}.", _render_groups(result)]
    lines += [f"Warning: {w}" for w in result.get("warnings", [])]
    lines += _render_lists(result.get("local_lists", []))
    return "\n".join(lines)


# ------------------------------------------------------------------------------ text output


def _where(result: dict[str, Any]) -> str:
    if result["source"] == "daemon":
        return "in the running daemon"
    return "in the store (edgegw is not running; it applies them when it starts)"


def _card_line(card: dict[str, Any]) -> str:
    who = ", ".join(x for x in (card["owner"], card["label"]) if x)
    return f"{card['id']} ({who})" if who else str(card["id"])


def _render_list(result: dict[str, Any]) -> str:
    cards = result["cards"]
    if not cards:
        if result["total"]:
            return f"No card matches ({result['total']} enrolled)."
        return "No cards enrolled yet. Add one with `edgegw cards add UID --owner NAME`."
    rows: list[tuple[str, ...]] = [("CARD", "STATUS", "OWNER", "LABEL", "EXPIRY", "CHARGERS")]
    for card in cards:
        status = card["status"]
        if card["effective"] != status:
            status = f"{status} (past expiry)"
        rows.append(
            (
                card["id"],
                status,
                card["owner"],
                card["label"],
                card["expiry"] or "-",
                " ".join(card["chargers"]) if card["chargers"] else "all",
            )
        )
    lines = table(rows)
    lines.append(f"{result['matched']} of {result['total']} card(s)")
    return "\n".join(lines)


def _render_show(card: dict[str, Any]) -> str:
    kind = f"{card['uid_bytes']}-byte UID" if card["kind"] == "uid" else "token"
    status = card["status"]
    if card["effective"] != status:
        status = f"{status}, but past its expiry: refused as Expired"
    lines = []
    if card.get("read_as"):
        lines.append(f"({card['read_as']})")
    lines += [
        f"Card {card['id']} ({kind})",
        f"  owner     {card['owner'] or '-'}",
        f"  label     {card['label'] or '-'}",
        f"  status    {status}",
        f"  expiry    {card['expiry'] or 'never'}",
        f"  chargers  {', '.join(card['chargers']) if card['chargers'] else 'all'}",
        f"  groups    {', '.join(card.get('groups') or []) or '-'}",
        f"  parent    {card['parent'] or '-'}  (OCPP parentIdTag)",
    ]
    lines += [f"  share     {_share_line(item)}" for item in card.get("shares") or []]
    if card["kind"] == "uid":
        lines.append("How chargers report it, by idTag format:")
        for variant in card["variants"]:
            partial = "" if variant["lossless"] else "  (only part of the UID)"
            lines.append(f"  {variant['format']:<13} {variant['idtag']}{partial}")
    if card["at_chargers"]:
        lines.append("At this site:")
        for at in card["at_chargers"]:
            if at["format_source"] == "unknown":
                how = f"{at['idtag']}  (format not known yet: every form is recognised)"
            else:
                how = f"{at['idtag']}  ({at['format']}, {at['format_source']})"
            refused = "" if at["allowed"] else "  — not allowed on this charger"
            lines.append(f"  {at['charger']:<13} {how}{refused}")
    return "\n".join(lines)


def _render_change(result: dict[str, Any]) -> str:
    card = result["card"]
    action = result["action"]
    who = _card_line(card)
    if action == "unchanged":
        text = f"Card {who} was already like that; nothing changed."
    else:
        text = f"{action.capitalize()} card {who} {_where(result)}."
    lines = [text]
    if result["source"] == "daemon" and action != "unchanged":
        lines += _takes_effect(card, action, result.get("site_decides", True))
    if action == "removed":
        lines.append(
            "It is now decided by the cloud or the site's policy for unknown cards; to refuse "
            f"it everywhere, add it again and block it (`edgegw cards add {card['id']} "
            "--status Blocked`)."
        )
    lines += [f"Warning: {w}" for w in result["warnings"]]
    lines += _render_lists(result["local_lists"])
    return "\n".join(lines)


def _takes_effect(card: dict[str, Any], action: str, site_decides: bool) -> list[str]:
    """What chargers do from the card's next tap (see ``auth.site_overrides_cloud``)."""
    refused = action == "blocked" or card["effective"] != "Accepted"
    limited = bool(card["chargers"]) and action in ("added", "updated", "unblocked")
    if not (refused or limited):
        return []
    if refused:
        what = f"It is refused as {card['effective']} from its next tap"
    else:
        what = (
            f"It is refused on chargers other than {', '.join(card['chargers'])} from its next tap"
        )
    if site_decides:
        return [f"{what}, whatever the cloud answers."]
    return [
        f"{what} when the gateway decides (cloud unreachable); while the cloud answers, the "
        "cloud decides (auth.site_overrides_cloud = false)."
    ]


def _render_lists(reports: list[dict[str, Any]]) -> list[str]:
    lines = []
    for report in reports:
        state = report["state"]
        if state == "in_step":
            lines.append(f"  {report['charger']}: local list updated ({report['detail']})")
        elif state == "failed":
            lines.append(f"  {report['charger']}: local list NOT updated: {report['detail']}")
        else:
            lines.append(f"  {report['charger']}: local list update pending; {report['detail']}")
    if lines:
        lines.insert(0, "Chargers holding a local list:")
    return lines


def _render_import(result: dict[str, Any]) -> str:
    lines = []
    counts = (
        f"{result['added']} added, {result['updated']} updated, "
        f"{result['unchanged']} unchanged, {result['removed']} removed"
    )
    if result.get("regrouped"):
        counts += f"; {result['regrouped']} changed card groups"
    outcome = result["outcome"]
    if outcome == "imported":
        lines.append(f"Imported {result['file']} {_where(result)}: {counts}.")
    elif outcome == "dry_run":
        lines.append(f"Dry run of {result['file']}: it would give {counts}; nothing was changed.")
    else:
        lines.append(f"Nothing imported from {result['file']}: {result['reason']}.")
    errors = result["errors"]
    if errors:
        if outcome == "imported":
            lines.append(f"{len(errors)} broken line(s) skipped:")
        elif outcome == "dry_run":
            lines.append(f"{len(errors)} broken line(s) would be skipped:")
        else:
            lines.append("Problems:")
        lines += [f"  line {e['line']}: {e['message']}" for e in errors]
        if outcome == "imported":
            lines.append("Fix these lines and import the file again (the other cards are in).")
    lines += [f"Warning: {w}" for w in result.get("warnings", [])]
    lines += _render_lists(result["local_lists"])
    return "\n".join(lines)
