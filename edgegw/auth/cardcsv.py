"""The installer's card CSV file: read all or nothing, with one line per problem, and written
back.

The ``groups`` column holds the card groups a card belongs to. Cards do not carry their groups
(the groups hold their cards, see :mod:`edgegw.auth.access`), so it is read apart
(:func:`csv_card_groups`) and applied to the groups with :func:`with_csv_groups`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType
from typing import Final

from edgegw.auth.access import Access, AccessError, check_name
from edgegw.auth.cardinfo import (
    _CARD_STATUS_LIST,
    CARD_STATUSES,
    AuthStatus,
    Card,
    CardError,
    CsvImportError,
    format_expiry,
    parse_expiry,
)
from edgegw.auth.idtags import (
    CardId,
    CardIdError,
    IdTagFormat,
    NotAUidError,
    parse_card_id,
    require_uid,
)

CSV_COLUMNS: Final = (
    "id",
    "format",
    "owner",
    "label",
    "status",
    "expiry",
    "chargers",
    "parent",
    "groups",
)
"""Columns of the card CSV file. Only ``id`` is required.

``format`` says how ``id`` is written (an idTag format such as ``dec_le`` for the number printed
on a card, ``token`` for a value that is not a card UID; empty reads hex, with or without
separators). ``status`` is Accepted (default), Blocked, Expired or Invalid. ``expiry`` is an ISO
date (valid through that day, UTC) or date and time. ``chargers`` lists the charger ids the card
works on, separated by spaces (empty: all chargers). ``parent`` is the OCPP parentIdTag.
``groups`` lists the card groups the card is in (``residents staff`` or ``residents;staff``);
when the file has this column, each card of the file is in exactly those groups afterwards (an
empty cell: in none); without it, the cards' groups are left as they are.
"""


_COLUMN_ALIASES: Final = MappingProxyType(
    {"id_tag": "id", "idtag": "id", "uid": "id", "card": "id"}
)


_CHARGER_SPLIT: Final = re.compile(r"[\s,;]+")


def parse_cards_csv(text: str, *, now: float) -> list[Card]:
    """Read a card CSV file (see :data:`CSV_COLUMNS`). All or nothing.

    ``now`` stamps the cards' times. The delimiter is ``,`` or ``;`` (as spreadsheets in many
    locales write it), a leading byte-order mark is ignored, header names are case-insensitive.
    Raises :class:`CsvImportError` listing every bad row with its line number.
    """
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    errors: list[tuple[int, str]] = []
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CsvImportError([(1, f"unreadable header: {exc}")]) from None
    if header is None or not any(h.strip() for h in header):
        raise CsvImportError([(1, f"empty file; expected a header like {','.join(CSV_COLUMNS)}")])
    columns = [_COLUMN_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    unknown = [h for h, c in zip(header, columns, strict=True) if c not in CSV_COLUMNS]
    if unknown:
        errors.append(
            (1, f"unknown column(s) {', '.join(map(repr, unknown))}; allowed: {CSV_COLUMNS}")
        )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        errors.append((1, f"column(s) given twice: {', '.join(repeated)}"))
    if "id" not in columns:
        errors.append((1, "no 'id' column"))
    if errors:
        raise CsvImportError(errors)

    cards: list[Card] = []
    seen: dict[str, int] = {}
    line = reader.line_num
    rows: Iterator[list[str]] = reader
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append((reader.line_num, f"unreadable CSV: {exc}"))
            break
        start, line = line + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            errors.append((start, f"{len(row)} fields, the header has {len(columns)}"))
            continue
        values = {c: v.strip() for c, v in zip(columns, row, strict=True)}
        try:
            card = _card_from_row(values, now)
        except (CardError, ValueError) as exc:
            errors.append((start, str(exc)))
            continue
        if card.key in seen:
            errors.append((start, f"card {card.id.canonical} is already on line {seen[card.key]}"))
            continue
        seen[card.key] = start
        cards.append(card)
    if errors:
        raise CsvImportError(errors)
    return cards


def _card_from_row(values: Mapping[str, str], now: float) -> Card:
    raw_id = values.get("id", "")
    if not raw_id:
        raise CardError("the id is empty")
    fmt_text = values.get("format", "").lower()
    if fmt_text == "token":
        card_id = CardId.from_token(raw_id)
    else:
        try:
            fmt = IdTagFormat(fmt_text or "auto")
        except ValueError:
            allowed = ", ".join(["token", *(f.value for f in IdTagFormat)])
            raise CardError(f"format {fmt_text!r} is not one of {allowed}") from None
        try:
            card_id = parse_card_id(raw_id, fmt)
            if fmt is IdTagFormat.AUTO:
                card_id = require_uid(card_id, raw_id)
        except NotAUidError as exc:
            raise CardError(
                f"id {raw_id!r}: {exc}; for a token (not a card UID) write token in the format "
                "column"
            ) from None
        except CardIdError as exc:
            raise CardError(f"id {raw_id!r}: {exc}") from None
    status_text = values.get("status", "")
    status = AuthStatus.ACCEPTED
    if status_text:
        matched = [s for s in CARD_STATUSES if s.value.lower() == status_text.lower()]
        if not matched:
            raise CardError(f"status {status_text!r} is not one of {_CARD_STATUS_LIST}")
        status = matched[0]
    _groups_cell(values.get("groups", ""))
    expiry_text = values.get("expiry", "")
    chargers_text = values.get("chargers", "")
    chargers = frozenset(c for c in _CHARGER_SPLIT.split(chargers_text) if c)
    return Card(
        id=card_id,
        owner=values.get("owner", ""),
        label=values.get("label", ""),
        status=status,
        expiry=_expiry(expiry_text) if expiry_text else None,
        chargers=chargers or None,
        parent_id=values.get("parent") or None,
        created_at=now,
        updated_at=now,
    )


def _groups_cell(text: str) -> frozenset[str]:
    """The card group names of a ``groups`` cell; CardError for a name no group can have."""
    names = frozenset(n for n in _CHARGER_SPLIT.split(text) if n)
    for name in sorted(names):
        try:
            check_name(name, "card group")
        except AccessError as exc:
            raise CardError(f"groups: {exc}") from None
    return names


def _expiry(text: str) -> datetime:
    try:
        return parse_expiry(text)
    except ValueError as exc:
        raise CardError(f"expiry: {exc}") from None


def cards_to_csv(cards: Iterable[Card], access: Access | None = None) -> str:
    """The cards as a CSV file that :func:`parse_cards_csv` reads back to the same cards; with
    ``access``, each card's groups in the ``groups`` column (read back by
    :func:`csv_card_groups`)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for card in sorted(cards, key=lambda c: c.key):
        writer.writerow(
            [
                card.id.canonical,
                "token" if card.id.is_token else "",
                card.owner,
                card.label,
                card.status.value,
                "" if card.expiry is None else format_expiry(card.expiry),
                " ".join(sorted(card.chargers or ())),
                card.parent_id or "",
                ""
                if access is None
                else " ".join(sorted(g.name for g in access.groups_of(card.key))),
            ]
        )
    return out.getvalue()


def csv_card_groups(text: str) -> dict[str, frozenset[str]] | None:
    """The ``groups`` cell of each readable line of a card CSV, by card key (the first line of a
    card counts); None when the file has no ``groups`` column (groups are left as they are).

    Lenient: a line that does not read as a card is left out (:func:`parse_cards_csv` reports it).
    """
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error:
        return None
    if header is None:
        return None
    columns = [_COLUMN_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    if "groups" not in columns or "id" not in columns:
        return None
    found: dict[str, frozenset[str]] = {}
    try:
        for row in reader:
            if len(row) != len(columns) or not any(cell.strip() for cell in row):
                continue
            values = {c: v.strip() for c, v in zip(columns, row, strict=True)}
            try:
                card = _card_from_row(values, 0.0)
            except (CardError, ValueError):
                continue
            found.setdefault(card.key, _groups_cell(values.get("groups", "")))
    except csv.Error:
        pass  # the rest of the file is unreadable: parse_cards_csv says where
    return found


def with_csv_groups(
    access: Access, groups: Mapping[str, frozenset[str]]
) -> tuple[Access, list[str], int]:
    """``access`` with each card of ``groups`` (card key -> group names) in exactly the named
    groups, a warning per named group that does not exist (the cards are left out of it), and
    how many cards changed groups."""
    members = {name: set(g.members) for name, g in access.card_groups.items()}
    unknown: dict[str, list[str]] = {}
    changed = 0
    for key, names in groups.items():
        before = {n for n, m in members.items() if key in m}
        after = {n for n in names if n in members}
        for name in sorted(names - after):
            unknown.setdefault(name, []).append(key)
        if before != after:
            changed += 1
        for name in before - after:
            members[name].discard(key)
        for name in after - before:
            members[name].add(key)
    warnings = [
        f"card group {name!r} does not exist: {_some(keys)} imported without it; create it "
        f"(`edgegw cards group {name}`) and import the file again"
        for name, keys in sorted(unknown.items())
    ]
    if not changed:
        return access, warnings, 0
    card_groups = {
        name: replace(g, members=frozenset(members[name])) for name, g in access.card_groups.items()
    }
    return replace(access, card_groups=card_groups), warnings, changed


def _some(keys: list[str]) -> str:
    shown = ", ".join(sorted(keys)[:5])
    more = len(keys) - 5
    return (
        f"card {shown} is"
        if len(keys) == 1
        else f"cards {shown}{f' and {more} more' if more > 0 else ''} are"
    )
