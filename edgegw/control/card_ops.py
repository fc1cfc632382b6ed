"""Control-socket operations on the site's installer cards.

The card work itself is :class:`CardService`, over an :class:`~edgegw.auth.authorizer.Authorizer`.
The daemon answers the ``cards.*`` ops with it (:class:`CardOps`), and the CLI uses the very same
service on the store it opens itself when the daemon is not running, so a card an installer
prepares before the first start is stored and shown exactly as the daemon would.

Through the daemon a change takes effect at once: the authorizer decides with it from the next
tap (a card the site refuses is refused even when the cloud accepts it, unless
``auth.site_overrides_cloud`` is false), and the list pusher sends it to every charger that holds
a local list. A mutating op may
``wait`` a few seconds for those pushes and reports, per charger, whether its list is in step.

Card ids are read with :mod:`edgegw.auth.idtags`, so an installer can type the UID as any
reader printed it (``04:a1:b2:c3``, reversed hex with ``format``, the decimal number printed on
the card). Results are plain JSON; times are Unix seconds or ISO 8601 (expiry).
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from edgegw.auth.access import (
    GROUP_PREFIX,
    Access,
    AccessError,
    CardGroup,
    Share,
    group_ref,
    parse_until,
)
from edgegw.auth.authorizer import Authorizer
from edgegw.auth.chargerformats import configured_formats
from edgegw.auth.idtags import (
    CardId,
    CardIdError,
    CardIndex,
    IdTagFormat,
    LostNibbleError,
    NotAUidError,
    interpretations,
    is_lossless,
    parse_card_id,
    require_uid,
    variants,
)
from edgegw.auth.listpush import ListPusher
from edgegw.auth.locallist import (
    CARD_STATUSES,
    AuthStatus,
    Card,
    CardError,
    CsvImportError,
    DuplicateCardError,
    UnknownCardError,
    cards_to_csv,
    format_datetime,
    format_expiry,
    parse_cards_csv,
    parse_expiry,
)
from edgegw.config import Config
from edgegw.control.optable import OpSpec, register_ops, run_op
from edgegw.control.protocol import ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer

MAX_PAGE: Final = 5000
"""Most cards one ``cards.list`` or ``cards.export`` answer carries."""
PAGE_BYTES: Final = 512 * 1024
"""A page stops growing past this size: an answer must fit in one 1 MiB protocol line, and
owners and labels have no length limit. Callers page on with ``offset``."""
_MAX_WAIT: Final = 30.0
_FORMAT_NAMES: Final = ", ".join(["token", *(f.value for f in IdTagFormat)])
_STATUS_NAMES: Final = ", ".join(s.value for s in CARD_STATUSES)
_EXPIRY_HELP: Final = (
    "write a date as YYYY-MM-DD (valid through that day, UTC) or a date and time such as "
    "2026-12-31T18:00:00+01:00"
)


class CardService:
    """The ``cards.*`` ops on an authorizer; see the module docstring.

    ``pusher`` and ``connected`` are the daemon's list pusher and the ids of the connected
    chargers (absent when the CLI works on the store directly). Every handler takes the op's
    JSON arguments and returns JSON, or raises :class:`ControlError` with a message for the
    person at the terminal.
    """

    def __init__(
        self,
        authorizer: Authorizer,
        config: Config,
        *,
        pusher: ListPusher | None = None,
        connected: Callable[[], Collection[str]] = tuple,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._auth = authorizer
        self._config = config
        self._formats = configured_formats(config)
        self._pusher = pusher
        self._connected = connected
        self._clock = clock

    async def run(self, op: str, args: Mapping[str, Any]) -> Any:
        """Run the ``cards.*`` op ``op`` (what the CLI does without a daemon)."""
        return await run_op(CARD_OPS, self, op, args)

    # ------------------------------------------------------------------ reading

    async def list_cards(self, args: dict[str, Any]) -> dict[str, Any]:
        """Cards matching ``text`` (in id, owner, label, parent or chargers) and ``status``."""
        text = get_arg(args, "text", str, "").strip().casefold()
        status = _status_arg(args, "status")
        offset = get_arg(args, "offset", int, 0)
        limit = get_arg(args, "limit", int, 1000)
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise ControlError(
                ErrorCode.BAD_ARGS, f"offset must be >= 0 and limit between 1 and {MAX_PAGE}"
            )
        now = self._clock()
        every = self._auth.cards()
        matched = [
            c
            for c in every
            if (not text or text in _haystack(c))
            and (status is None or _effective(c, now) is status)
        ]
        shown: list[dict[str, Any]] = []
        size = 0
        for card in matched[offset : offset + limit]:
            entry = card_json(card, now)
            size += len(json.dumps(entry, ensure_ascii=False))
            if shown and size > PAGE_BYTES:
                break
            shown.append(entry)
        return {
            "total": len(every),
            "matched": len(matched),
            "offset": offset,
            "cards": shown,
        }

    async def show(self, args: dict[str, Any]) -> dict[str, Any]:
        """One card, every form a charger may report it in, and how each charger will."""
        card, note = self._find(args)
        out = card_json(card, self._clock())
        out["read_as"] = note
        out["variants"] = [
            {"format": fmt.value, "idtag": text, "lossless": is_lossless(card.id, fmt)}
            for fmt, text in variants(card.id).items()
        ]
        out["at_chargers"] = [self._at_charger(card, c.id) for c in self._config.chargers]
        access = self._auth.access
        out["groups"] = [g.name for g in access.groups_of(card.key)]
        now = self._clock()
        out["shares"] = [share_json(s, self._auth, now) for s in access.shares_of(card.key)]
        return out

    def _at_charger(self, card: Card, charger_id: str) -> dict[str, Any]:
        fmt, source = self.format_of(charger_id)
        shown = variants(card.id).get(fmt) if fmt is not IdTagFormat.AUTO else card.id.canonical
        return {
            "charger": charger_id,
            "format": fmt.value,
            "format_source": source,
            "idtag": shown,
            "allowed": self._auth.access.verdict(
                card.key, card.chargers, charger_id, self._clock()
            ).allowed,
        }

    def format_of(self, charger_id: str) -> tuple[IdTagFormat, str]:
        """How the charger writes card ids, and whether that is configured, detected or unknown."""
        configured = self._formats.get(charger_id)
        if configured is not None:
            return configured, "configured"
        detected = self._auth.detected_format(charger_id)
        if detected is not None:
            return detected.fmt, "detected"
        return IdTagFormat.AUTO, "unknown"

    async def export(self, args: dict[str, Any]) -> dict[str, Any]:
        """The cards as CSV (the form ``cards.import`` reads), ``limit`` cards from ``offset``."""
        offset = get_arg(args, "offset", int, 0)
        limit = get_arg(args, "limit", int, MAX_PAGE)
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise ControlError(
                ErrorCode.BAD_ARGS, f"offset must be >= 0 and limit between 1 and {MAX_PAGE}"
            )
        every = self._auth.cards()
        header = cards_to_csv([])
        rows: list[str] = []
        size = len(header)
        for card in every[offset : offset + limit]:
            row = cards_to_csv([card])[len(header) :]
            size += len(row)
            if rows and size > PAGE_BYTES:
                break
            rows.append(row)
        return {
            "total": len(every),
            "offset": offset,
            "count": len(rows),
            "csv": header + "".join(rows),
        }

    # ------------------------------------------------------------------ changing

    async def add(self, args: dict[str, Any]) -> dict[str, Any]:
        card_id = self._parse_new(args)
        warnings: list[str] = []
        expiry = _expiry_arg(args, "expiry")
        if expiry is not None and expiry.timestamp() <= self._clock():
            warnings.append(
                f"the expiry {format_expiry(expiry)} is already past: the card is refused "
                "as Expired until you change it"
            )
        chargers = self._chargers_arg(args, warnings)
        try:
            card = Card(
                id=card_id,
                owner=get_arg(args, "owner", str, ""),
                label=get_arg(args, "label", str, ""),
                status=_status_arg(args, "status") or AuthStatus.ACCEPTED,
                expiry=expiry,
                chargers=chargers or None,
                parent_id=get_arg(args, "parent", str, "") or None,
            )
        except CardError as exc:
            raise ControlError(ErrorCode.BAD_ARGS, str(exc)) from None
        warnings += self._look_alikes(card.id)
        try:
            card = await self._auth.add_card(card)
        except DuplicateCardError:
            raise ControlError(
                ErrorCode.CONFLICT,
                f"card {card_id.canonical} is already enrolled; change it with "
                f"`edgegw cards update {card_id.canonical}`",
            ) from None
        return await self._changed(card, "added", args, warnings)

    async def update(self, args: dict[str, Any]) -> dict[str, Any]:
        old, _ = self._find(args)
        warnings: list[str] = []
        changes: dict[str, Any] = {}
        for name, field in (("owner", "owner"), ("label", "label")):
            if args.get(name) is not None:
                changes[field] = get_arg(args, name, str)
        status = _status_arg(args, "status")
        if status is not None:
            changes["status"] = status
        if args.get("expiry") is not None:
            changes["expiry"] = _expiry_arg(args, "expiry")
        if args.get("parent") is not None:
            changes["parent_id"] = get_arg(args, "parent", str) or None
        if args.get("chargers") is not None or args.get("charger_groups") is not None:
            changes["chargers"] = self._chargers_arg(args, warnings) or None
        if not changes:
            raise ControlError(
                ErrorCode.BAD_ARGS,
                "nothing to change: give owner, label, status, expiry, chargers or parent",
            )
        try:
            new = dataclasses.replace(old, **changes)
        except CardError as exc:
            raise ControlError(ErrorCode.BAD_ARGS, str(exc)) from None
        if new == old:
            return await self._changed(old, "unchanged", args, warnings, push=False)
        try:
            card = await self._auth.update_card(new)
        except UnknownCardError:
            raise _not_found(old.id.canonical) from None
        return await self._changed(card, "updated", args, warnings)

    async def block(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self._set_status(args, AuthStatus.BLOCKED)

    async def unblock(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self._set_status(args, AuthStatus.ACCEPTED)

    async def _set_status(self, args: dict[str, Any], status: AuthStatus) -> dict[str, Any]:
        card, _ = self._find(args)
        if card.status is status:
            return await self._changed(card, "unchanged", args, [], push=False)
        try:
            card = await (self._auth.block if status is AuthStatus.BLOCKED else self._auth.unblock)(
                card.id
            )
        except UnknownCardError:
            raise _not_found(card.id.canonical) from None
        action = "blocked" if status is AuthStatus.BLOCKED else "unblocked"
        return await self._changed(card, action, args, [])

    async def remove(self, args: dict[str, Any]) -> dict[str, Any]:
        card, _ = self._find(args)
        try:
            card = await self._auth.remove(card.id)
        except UnknownCardError:
            raise _not_found(card.id.canonical) from None
        return await self._changed(card, "removed", args, [])

    async def import_csv(self, args: dict[str, Any]) -> dict[str, Any]:
        """Import a card CSV: good lines are imported, each bad line is reported by number.

        With ``replace`` (cards not in the file are removed) the file must be free of errors:
        a broken line would otherwise remove the card written on it. ``dry_run`` reports what
        would change without changing anything.
        """
        text = get_arg(args, "csv", str)
        replace = get_arg(args, "replace", bool, False)
        dry_run = get_arg(args, "dry_run", bool, False)
        now = self._clock()
        cards, errors, fatal = read_csv(text, now)
        result: dict[str, Any] = {
            "outcome": "refused",
            "dry_run": dry_run,
            "replace": replace,
            "added": 0,
            "updated": 0,
            "unchanged": 0,
            "removed": 0,
            "errors": [{"line": line, "message": message} for line, message in errors],
            "warnings": self._unknown_groups(cards),
            "local_lists": [],
        }
        if fatal:
            result["reason"] = "the file cannot be read as a card CSV"
            return result
        if errors and replace:
            result["reason"] = (
                "an import with replace removes every card not in the file, so the cards on "
                "the broken lines would be removed; fix them and import again"
            )
            return result
        if dry_run:
            result.update(self._plan(cards, replace), outcome="dry_run")
            return result
        try:
            done = await self._auth.import_csv(cards_to_csv(cards), replace=replace)
        except CsvImportError as exc:  # the cards written back did not read back: a bug
            raise ControlError(
                ErrorCode.INTERNAL, f"the checked cards did not import: {exc}"
            ) from None
        result.update(
            outcome="imported",
            added=done.added,
            updated=done.updated,
            unchanged=done.unchanged,
            removed=done.removed,
        )
        if done.added or done.updated or done.removed:
            result["local_lists"] = await self._push_report(args)
        return result

    def _plan(self, cards: list[Card], replace: bool) -> dict[str, int]:
        added = updated = unchanged = 0
        for card in cards:
            old = self._auth.card(card.id)
            if old is None:
                added += 1
            elif old == card:
                unchanged += 1
            else:
                updated += 1
        keys = {c.key for c in cards}
        removed = sum(1 for c in self._auth.cards() if c.key not in keys) if replace else 0
        return {"added": added, "updated": updated, "unchanged": unchanged, "removed": removed}

    # ------------------------------------------------------------------ helpers

    async def _changed(
        self,
        card: Card,
        action: str,
        args: dict[str, Any],
        warnings: list[str],
        *,
        push: bool = True,
    ) -> dict[str, Any]:
        cfg = self._config
        return {
            "action": action,
            "card": card_json(card, self._clock()),
            "warnings": warnings,
            "local_lists": await self._push_report(args) if push else [],
            # The site's refusal holds also while the cloud answers (see edgegw.auth.authority).
            "site_decides": cfg.cloud is None or cfg.auth.site_overrides_cloud,
        }

    async def _push_report(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Per connected charger holding a local list: is the change on it yet?

        Waits up to ``args["wait"]`` seconds (0: report without waiting) for every charger's
        pusher to finish, all chargers at once.
        """
        wait = get_arg(args, "wait", float, 0.0)
        if not 0 <= wait <= _MAX_WAIT:
            raise ControlError(ErrorCode.BAD_ARGS, f"wait must be between 0 and {_MAX_WAIT:g} s")
        pusher = self._pusher
        if pusher is None:
            return []
        holders = []
        for charger_id in sorted(self._connected()):
            status = pusher.status(charger_id)
            caps = status.capabilities if status is not None else None
            if status is not None and status.connected and (caps is None or caps.supported):
                holders.append(charger_id)

        async def settle(charger_id: str) -> dict[str, Any]:
            confirmed = True
            if wait > 0:
                try:
                    await pusher.wait_idle(charger_id, timeout=wait)
                except (TimeoutError, KeyError):
                    confirmed = False
            status = pusher.status(charger_id)
            caps = status.capabilities if status is not None else None
            if status is None or (caps is not None and not caps.supported):
                return {"charger": charger_id, "state": "no_list", "detail": ""}
            if status.synced and confirmed:
                state, detail = "in_step", f"{status.entries} entries, version {status.version}"
            elif status.last_error:
                state, detail = "failed", f"{status.last_error}; the gateway keeps retrying"
            else:
                state = "pending"
                detail = "the update is on its way; the gateway keeps trying until it is taken"
            return {"charger": charger_id, "state": state, "detail": detail}

        reports = await asyncio.gather(*(settle(c) for c in holders))
        return [r for r in reports if r["state"] != "no_list"]

    def _look_alikes(self, card_id: CardId) -> list[str]:
        """Enrolled cards that some charger format reports exactly like ``card_id``."""
        if card_id.uid is None:
            return []
        others: dict[str, Card] = {}
        for text in set(variants(card_id).values()):
            for reading in interpretations(text).values():
                enrolled = self._auth.card(reading) if reading != card_id else None
                if enrolled is not None:
                    others[enrolled.key] = enrolled
        if not others:
            return []
        index = CardIndex([card_id, *(c.id for c in others.values())])
        shared: dict[str, list[str]] = {}
        for text, cards in sorted(index.clashes(card_id).items()):
            for other in cards:
                shared.setdefault(other.key, []).append(text)
        return [
            f"{card_id.canonical} and enrolled card {others[key].describe()} can both arrive "
            f"as {', '.join(texts[:3])} from a charger whose idTag format is not known; set the "
            "chargers' idtag_format so that they are told apart"
            for key, texts in shared.items()
            if key in others
        ]

    def _parse_new(self, args: dict[str, Any]) -> CardId:
        text = get_arg(args, "card", str)
        fmt = get_arg(args, "format", str, "")
        try:
            return parse_text(text, fmt)
        except CardIdError as exc:
            raise ControlError(ErrorCode.BAD_ARGS, f"card id {text!r}: {exc}") from None

    def _find(self, args: dict[str, Any]) -> tuple[Card, str | None]:
        """The enrolled card ``args["card"]`` names, and how the text was read if not plainly.

        Without a ``format``, a text that does not read as one card (a bare decimal number, a
        lost leading zero) is resolved when exactly one of its readings is enrolled.
        """
        text = get_arg(args, "card", str)
        fmt = get_arg(args, "format", str, "")
        auth = self._auth
        if fmt:
            try:
                card_id = parse_text(text, fmt)
            except CardIdError as exc:
                raise ControlError(ErrorCode.BAD_ARGS, f"card id {text!r}: {exc}") from None
            card = auth.card(card_id)
            if card is None:
                raise _not_found(card_id.canonical)
            return card, None
        hit = _by_key(auth, text)
        if hit is not None:
            return hit, None
        try:
            card_id = parse_card_id(text)
        except CardIdError as exc:
            readings = _enrolled_readings(auth, text, exc)
            if len(readings) == 1:
                ((how, card),) = readings.items()
                return card, f"{text.strip()!r} read as {how}: card {card.id.canonical}"
            if readings:
                listed = "; ".join(f"{c.describe()} ({how})" for how, c in readings.items())
                raise ControlError(
                    ErrorCode.CONFLICT,
                    f"{text.strip()!r} reads as several enrolled cards: {listed}; give the "
                    "card's format (--format) or its canonical id",
                ) from None
            raise ControlError(ErrorCode.BAD_ARGS, f"card id {text!r}: {exc}") from None
        card = auth.card(card_id)
        if card is not None:
            return card, None
        readings = _enrolled_readings(auth, text, None)
        hint = " `edgegw cards list` shows the enrolled cards."
        if readings:
            hint = " It matches " + "; ".join(
                f"enrolled card {c.describe()} when read as {how}" for how, c in readings.items()
            )
            hint += ": use that card's id, or give --format."
        raise ControlError(
            ErrorCode.NOT_FOUND,
            f"no enrolled card {card_id.canonical}.{hint}",
        )

    def _chargers_arg(self, args: dict[str, Any], warnings: list[str]) -> frozenset[str]:
        """Charger ids and charger groups (``@name``, or the names in ``charger_groups``)."""
        chargers = _names_arg(args) | {group_ref(g) for g in _names_arg(args, "charger_groups")}
        try:
            self._auth.access.check_chargers(chargers)
        except AccessError as exc:
            raise ControlError(ErrorCode.BAD_ARGS, str(exc)) from None
        known = {c.id for c in self._config.chargers}
        unknown = sorted(c for c in chargers - known if not c.startswith(GROUP_PREFIX))
        if unknown:
            warnings.append(
                f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not configured "
                "(yet); the card works there once the charger is added"
            )
        return chargers

    # ------------------------------------------------------------------ groups and shares

    async def groups(self, args: dict[str, Any]) -> dict[str, Any]:
        """Charger groups, card groups (with their cards) and shares."""
        return access_json(self._auth, self._clock())

    async def charger_group(self, args: dict[str, Any]) -> dict[str, Any]:
        """Set the charger group ``name`` to ``chargers`` (none, or ``delete``: delete it)."""
        name = get_arg(args, "name", str).strip()
        chargers = frozenset() if get_arg(args, "delete", bool, False) else _names_arg(args)
        warnings: list[str] = []
        known = {c.id for c in self._config.chargers}
        unknown = sorted(chargers - known)
        if unknown:
            warnings.append(f"{', '.join(unknown)}: not configured (yet)")
        used = self._charger_group_users(name) if not chargers else []
        if used:
            raise ControlError(
                ErrorCode.CONFLICT,
                f"charger group {name!r} is still used by {', '.join(used[:5])}; change them first",
            )
        await self._access(lambda a: a.with_charger_group(name, chargers))
        return {
            "action": "deleted" if not chargers else "set",
            "warnings": warnings,
            **access_json(self._auth, self._clock()),
        }

    async def card_group(self, args: dict[str, Any]) -> dict[str, Any]:
        """Create or change the card group ``name``: its chargers, cards to ``add`` and
        ``remove``; ``delete`` deletes it (its cards stay enrolled, its shares go)."""
        name = get_arg(args, "name", str).strip()
        if get_arg(args, "delete", bool, False):
            await self._access(lambda a: a.without_card_group(name))
            return {"action": "deleted", "warnings": [], **access_json(self._auth, self._clock())}
        old = self._auth.access.card_groups.get(name) or CardGroup(name)
        warnings: list[str] = []
        chargers = old.chargers
        if get_arg(args, "all_chargers", bool, False):
            chargers = None
        elif args.get("chargers") is not None or args.get("charger_groups") is not None:
            chargers = self._chargers_arg(args, warnings)
            if not chargers:  # an empty or mistyped list must not mean "everywhere"
                raise ControlError(
                    ErrorCode.BAD_ARGS, "no chargers given: name some, or use all_chargers"
                )
        add = {self._find({"card": t})[0].key for t in _names_arg(args, "add")}
        remove = {self._find({"card": t})[0].key for t in _names_arg(args, "remove")}
        group = CardGroup(name, (old.members | add) - remove, chargers)
        action = "created" if name not in self._auth.access.card_groups else "set"
        await self._access(lambda a: a.with_card_group(group))
        return {"action": action, "warnings": warnings, **access_json(self._auth, self._clock())}

    async def share(self, args: dict[str, Any]) -> dict[str, Any]:
        """Allow a ``card`` or a card ``group`` on ``chargers``/``charger_groups`` ``until``."""
        now = self._clock()
        group = get_arg(args, "group", str, "").strip() or None
        card_text = get_arg(args, "card", str, "").strip()
        if (group is None) == (not card_text):
            raise ControlError(ErrorCode.BAD_ARGS, "share one card or one card group")
        card = (
            self._find({"card": card_text, "format": args.get("format")})[0] if card_text else None
        )
        warnings: list[str] = []
        chargers = self._chargers_arg(args, warnings)
        try:
            until = parse_until(get_arg(args, "until", str), now)
        except AccessError as exc:
            raise ControlError(ErrorCode.BAD_ARGS, f"until: {exc}") from None
        made: list[Share] = []

        def add(access: Access) -> Access:
            made.append(
                Share(
                    access.next_share_id(),
                    chargers,
                    until,
                    card=None if card is None else card.key,
                    group=group,
                    note=get_arg(args, "note", str, ""),
                )
            )
            return access.with_share(made[0])

        await self._access(add)
        return {
            "action": "shared",
            "share": share_json(made[0], self._auth, now),
            "warnings": warnings,
            "local_lists": await self._push_report(args),
        }

    async def unshare(self, args: dict[str, Any]) -> dict[str, Any]:
        share_id = get_arg(args, "id", int)
        await self._access(lambda a: a.without_share(share_id))
        return {"action": "unshared", "id": share_id, "local_lists": await self._push_report(args)}

    async def _access(self, change: Callable[[Access], Access]) -> None:
        try:
            await self._auth.change_access(change)
        except AccessError as exc:
            raise ControlError(ErrorCode.BAD_ARGS, str(exc)) from None

    def _unknown_groups(self, cards: list[Card]) -> list[str]:
        """Cards of an import naming charger groups that do not exist (yet)."""
        known = self._auth.access.charger_groups
        out: list[str] = []
        for card in cards:
            missing = sorted(
                c for c in card.chargers or () if c.startswith(GROUP_PREFIX) and c[1:] not in known
            )
            if missing:
                out.append(
                    f"card {card.id.canonical} names {', '.join(missing)}, which is no charger "
                    "group yet: it works there once the group is created "
                    "(`edgegw cards charger-group NAME CHARGER...`)"
                )
        return out

    def _charger_group_users(self, name: str) -> list[str]:
        ref = group_ref(name)
        access = self._auth.access
        users = [f"card {c.id.canonical}" for c in self._auth.cards() if ref in (c.chargers or ())]
        users += [
            f"card group {g.name}" for g in access.card_groups.values() if ref in (g.chargers or ())
        ]
        users += [f"share {s.id}" for s in access.shares if ref in s.chargers]
        return users


# ---------------------------------------------------------------------------- the op table

CARD_OPS: Final[Mapping[str, OpSpec[CardService]]] = {
    "cards.list": OpSpec(
        CardService.list_cards,
        False,
        "Installer cards (args: text, status, offset, limit).",
    ),
    "cards.show": OpSpec(
        CardService.show,
        False,
        "One card with the forms chargers report it in (args: card, format).",
    ),
    "cards.export": OpSpec(CardService.export, False, "Cards as CSV (args: offset, limit)."),
    "cards.add": OpSpec(
        CardService.add,
        True,
        "Enrol a card (args: card, format, owner, label, status, expiry, chargers, parent, wait).",
    ),
    "cards.update": OpSpec(
        CardService.update,
        True,
        "Change a card (args: card, format, owner, label, status, expiry, chargers, parent, wait).",
    ),
    "cards.block": OpSpec(
        CardService.block, True, "Block a card, also on chargers' local lists (args: card, wait)."
    ),
    "cards.unblock": OpSpec(
        CardService.unblock, True, "Accept a blocked card again (args: card, wait)."
    ),
    "cards.remove": OpSpec(CardService.remove, True, "Forget a card (args: card, wait)."),
    "cards.groups": OpSpec(
        CardService.groups, False, "Charger groups, card groups and shares (no args)."
    ),
    "cards.charger_group": OpSpec(
        CardService.charger_group,
        True,
        "Set or delete a charger group (args: name, chargers, delete).",
    ),
    "cards.group": OpSpec(
        CardService.card_group,
        True,
        "Create, change or delete a card group (args: name, chargers, charger_groups, "
        "all_chargers, add, remove, delete).",
    ),
    "cards.share": OpSpec(
        CardService.share,
        True,
        "Allow a card or card group on chargers until a time (args: card, format, group, "
        "chargers, charger_groups, until, note, wait).",
    ),
    "cards.unshare": OpSpec(CardService.unshare, True, "End a share now (args: id, wait)."),
    "cards.import": OpSpec(
        CardService.import_csv,
        True,
        "Import card CSV text (args: csv, replace, dry_run, wait); bad lines are reported.",
    ),
}


class CardOps:
    """Registers the ``cards.*`` operations on a :class:`ControlServer`, over the daemon's
    ``authorizer``, configuration in force (``config``), list ``pusher`` and ``connected``
    chargers."""

    def __init__(
        self,
        authorizer: Authorizer,
        config: Callable[[], Config],
        *,
        pusher: ListPusher | None = None,
        connected: Callable[[], list[str]] = list,
    ) -> None:
        self._authorizer = authorizer
        self._config = config
        self._pusher = pusher
        self._connected = connected

    def register(self, server: ControlServer) -> None:
        register_ops(server, CARD_OPS, self.service)

    def service(self) -> CardService:
        return CardService(
            self._authorizer, self._config(), pusher=self._pusher, connected=self._connected
        )


# ---------------------------------------------------------------------------- pure helpers


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
        raise CardIdError(f"format {fmt!r} is not one of {_FORMAT_NAMES}") from None
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
                "cards": sorted(_member_name(auth, key) for key in g.members),
            }
            for _, g in sorted(access.card_groups.items())
        ],
        "shares": [share_json(s, auth, now) for s in access.shares],
    }


def share_json(share: Share, auth: Authorizer, now: float) -> dict[str, Any]:
    return {
        "id": share.id,
        "card": None if share.card is None else _member_name(auth, share.card),
        "group": share.group,
        "chargers": sorted(share.chargers),
        "until": format_datetime(datetime.fromtimestamp(share.until, UTC)),
        "active": share.active(now),
        "note": share.note,
    }


def _member_name(auth: Authorizer, key: str) -> str:
    card = auth.card(key)
    return key if card is None else card.describe()


def _names_arg(args: dict[str, Any], name: str = "chargers") -> frozenset[str]:
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
        "effective": _effective(card, now).value,
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
    header, records, stopped_at = _records(text)
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


def _records(text: str) -> tuple[list[str], list[tuple[int, list[str]]], int | None]:
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


def _haystack(card: Card) -> str:
    parts = [card.id.canonical, card.owner, card.label, card.parent_id or ""]
    parts += sorted(card.chargers or ())
    return "\n".join(parts).casefold()


def _effective(card: Card, now: float) -> AuthStatus:
    expiry = card.expiry
    if card.status is AuthStatus.ACCEPTED and expiry is not None and expiry.timestamp() <= now:
        return AuthStatus.EXPIRED
    return card.status


def _status_arg(args: dict[str, Any], name: str) -> AuthStatus | None:
    text = get_arg(args, name, str, "").strip()
    if not text:
        return None
    for status in CARD_STATUSES:
        if status.value.lower() == text.lower():
            return status
    raise ControlError(ErrorCode.BAD_ARGS, f"status {text!r} is not one of {_STATUS_NAMES}")


def _expiry_arg(args: dict[str, Any], name: str) -> datetime | None:
    text = get_arg(args, name, str, "").strip()
    if not text:
        return None
    try:
        return parse_expiry(text)
    except ValueError as exc:
        raise ControlError(ErrorCode.BAD_ARGS, f"expiry: {exc}; {_EXPIRY_HELP}") from None


def _enrolled_readings(auth: Authorizer, text: str, error: CardIdError | None) -> dict[str, Card]:
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


def _by_key(auth: Authorizer, text: str) -> Card | None:
    """The card whose canonical id is ``text`` (any letter case), without parsing it."""
    if not text.strip():
        return None
    try:
        return auth.card(text.strip().upper())
    except CardIdError:
        return None  # not a stored key, and the authorizer's own parse failed too


def _not_found(canonical: str) -> ControlError:
    return ControlError(
        ErrorCode.NOT_FOUND,
        f"no enrolled card {canonical}; `edgegw cards list` shows the enrolled cards",
    )
