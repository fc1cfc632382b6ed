"""The card ops' JSON shapes and argument readers: pure functions over cards, shares and the
arguments of a ``cards.*`` request (no I/O). :class:`~edgegw.control.card_service.CardService`
answers the ops with them.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any, Final

from edgegw.auth.access import Share
from edgegw.auth.authorizer import Authorizer
from edgegw.auth.idtags import (
    CardId,
    CardIdError,
    IdTagFormat,
    LostNibbleError,
    NotAUidError,
    interpretations,
    parse_card_id,
    require_uid,
)
from edgegw.auth.locallist import (
    CARD_STATUSES,
    AuthStatus,
    Card,
    CsvImportError,
    format_datetime,
    format_expiry,
    parse_cards_csv,
    parse_expiry,
)
from edgegw.control.protocol import ControlError, ErrorCode, get_arg

MAX_PAGE: Final = 5000
"""Most cards one ``cards.list`` or ``cards.export`` answer carries."""
PAGE_BYTES: Final = 512 * 1024
"""A page stops growing past this size: an answer must fit in one 1 MiB protocol line, and
owners and labels have no length limit. Callers page on with ``offset``."""
MAX_WAIT: Final = 30.0
FORMAT_NAMES: Final = ", ".join(["token", *(f.value for f in IdTagFormat)])
STATUS_NAMES: Final = ", ".join(s.value for s in CARD_STATUSES)
EXPIRY_HELP: Final = (
    "write a date as YYYY-MM-DD (valid through that day, UTC) or a date and time such as "
    "2026-12-31T18:00:00+01:00"
)


def parse_text(text: str, fmt: str = "") -> CardId:
    """A card id typed by an installer, in ``fmt`` (``token``, an idTag format, or "" for auto).

    Without a format the text must be a card UID (a typo is not enrolled as a token): a token
    takes ``token``. Raises :class:`CardIdError` saying what is wrong.
    """
    if fmt == "token":
        return CardId.from_token(text.strip())
    try:
        parsed = IdTagFormat(fmt or IdTagFormat.AUTO.value)
    except ValueError:
        raise CardIdError(f"format {fmt!r} is not one of {FORMAT_NAMES}") from None
    card = parse_card_id(text, parsed)
    if parsed is IdTagFormat.AUTO:
        try:
            card = require_uid(card, text)
        except NotAUidError as exc:
            raise NotAUidError(
                f"{exc}. If it is a token (an app or virtual card, not a card UID), give its "
                "format as token (--format token)"
            ) from None
    if card.is_token:
        return CardId.from_idtag(card.canonical)  # how the store reads it back
    return card


def access_json(auth: Authorizer, now: float) -> dict[str, Any]:
    """Charger groups, card groups and shares as the ops return them."""
    access = auth.access
    return {
        "charger_groups": {k: sorted(v) for k, v in sorted(access.charger_groups.items())},
        "card_groups": [
            {
                "name": g.name,
                "chargers": None if g.chargers is None else sorted(g.chargers),
                "cards": sorted(member_name(auth, key) for key in g.members),
            }
            for _, g in sorted(access.card_groups.items())
        ],
        "shares": [share_json(s, auth, now) for s in access.shares],
    }


def share_json(share: Share, auth: Authorizer, now: float) -> dict[str, Any]:
    return {
        "id": share.id,
        "card": None if share.card is None else member_name(auth, share.card),
        "group": share.group,
        "chargers": sorted(share.chargers),
        "until": format_datetime(datetime.fromtimestamp(share.until, UTC)),
        "active": share.active(now),
        "note": share.note,
    }


def member_name(auth: Authorizer, key: str) -> str:
    card = auth.card(key)
    return key if card is None else card.describe()


def names_arg(args: dict[str, Any], name: str = "chargers") -> frozenset[str]:
    raw = args.get(name)
    if raw is None:
        return frozenset()
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        what = "charger ids" if name == "chargers" else "names"
        raise ControlError(ErrorCode.BAD_ARGS, f"{name!r} must be a list of {what}")
    return frozenset(c.strip() for c in raw if c.strip())


def card_json(card: Card, now: float) -> dict[str, Any]:
    """A card as the ops return it."""
    uid = card.id.uid
    return {
        "id": card.id.canonical,
        "kind": "token" if uid is None else "uid",
        "uid_bytes": None if uid is None else len(uid),
        "owner": card.owner,
        "label": card.label,
        "status": card.status.value,
        "effective": effective(card, now).value,
        # As the installer wrote it (the last valid day), and the instant it ends for machines.
        "expiry": None if card.expiry is None else format_expiry(card.expiry),
        "expires_at": None if card.expiry is None else format_datetime(card.expiry),
        "chargers": None if card.chargers is None else sorted(card.chargers),
        "parent": card.parent_id,
        "created_at": card.created_at,
        "updated_at": card.updated_at,
    }


def read_csv(text: str, now: float) -> tuple[list[Card], list[tuple[int, str]], bool]:
    """The good cards of a card CSV, every bad line with its number, and whether the file
    is unreadable as a whole (a bad header: nothing can be imported).

    :func:`~edgegw.auth.locallist.parse_cards_csv` is all or nothing; this keeps the lines
    that parse and reports the others by their line number in the original file.
    """
    try:
        return parse_cards_csv(text, now=now), [], False
    except CsvImportError as exc:
        errors = list(exc.errors)
    if any(line == 1 for line, _ in errors):
        return [], errors, True
    bad = {line for line, _ in errors}
    header, records, stopped_at = csv_records(text)
    good = [row for line, row in records if line not in bad]
    if stopped_at is not None:
        later = [line for line, _ in records if line > stopped_at]
        if later:
            errors.append((stopped_at, "the lines after this one were not read"))
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(good)
    try:
        cards = parse_cards_csv(out.getvalue(), now=now) if good else []
    except CsvImportError as exc:  # should not happen: every bad line was left out
        errors.extend((0, f"after leaving out the bad lines: {m}") for _, m in exc.errors)
        return [], sorted(errors), True
    return cards, sorted(errors), False


def csv_records(text: str) -> tuple[list[str], list[tuple[int, list[str]]], int | None]:
    """Header and ``(first line, fields)`` of each record, read as ``parse_cards_csv`` reads;
    the line where an unreadable record stopped the reading, if one did."""
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header = next(reader, [])
    records: list[tuple[int, list[str]]] = []
    line = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return header, records, None
        except csv.Error:
            return header, records, reader.line_num
        start, line = line + 1, reader.line_num
        records.append((start, row))


def haystack(card: Card) -> str:
    parts = [card.id.canonical, card.owner, card.label, card.parent_id or ""]
    parts += sorted(card.chargers or ())
    return "\n".join(parts).casefold()


def effective(card: Card, now: float) -> AuthStatus:
    expiry = card.expiry
    if card.status is AuthStatus.ACCEPTED and expiry is not None and expiry.timestamp() <= now:
        return AuthStatus.EXPIRED
    return card.status


def status_arg(args: dict[str, Any], name: str) -> AuthStatus | None:
    text = get_arg(args, name, str, "").strip()
    if not text:
        return None
    for status in CARD_STATUSES:
        if status.value.lower() == text.lower():
            return status
    raise ControlError(ErrorCode.BAD_ARGS, f"status {text!r} is not one of {STATUS_NAMES}")


def expiry_arg(args: dict[str, Any], name: str) -> datetime | None:
    text = get_arg(args, name, str, "").strip()
    if not text:
        return None
    try:
        return parse_expiry(text)
    except ValueError as exc:
        raise ControlError(ErrorCode.BAD_ARGS, f"expiry: {exc}; {EXPIRY_HELP}") from None


def enrolled_readings(auth: Authorizer, text: str, error: CardIdError | None) -> dict[str, Card]:
    """Enrolled cards that ``text`` reads as under some format, keyed by how it was read."""
    found: dict[str, Card] = {}
    seen: set[str] = set()
    candidates = list(interpretations(text.strip()).items())
    for fmt, card_id in candidates:
        card = auth.card(card_id)
        if card is not None and card.key not in seen:
            seen.add(card.key)
            found[fmt.value] = card
    if isinstance(error, LostNibbleError):
        for card_id in error.candidates:
            card = auth.card(card_id)
            if card is not None and card.key not in seen:
                seen.add(card.key)
                found[f"hex with a lost leading zero ({card_id.canonical})"] = card
    return found


def by_key(auth: Authorizer, text: str) -> Card | None:
    """The card whose canonical id is ``text`` (any letter case), without parsing it."""
    if not text.strip():
        return None
    try:
        return auth.card(text.strip().upper())
    except CardIdError:
        return None  # not a stored key, and the authorizer's own parse failed too


def not_found(canonical: str) -> ControlError:
    return ControlError(
        ErrorCode.NOT_FOUND,
        f"no enrolled card {canonical}; `edgegw cards list` shows the enrolled cards",
    )
