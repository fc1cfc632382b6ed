"""The card work behind the ``cards.*`` ops: :class:`CardService`, over an
:class:`~edgegw.auth.authorizer.Authorizer` (see :mod:`edgegw.control.card_ops`, which registers
it on the control socket; the CLI uses the same service on the store it opens itself).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Final

from edgegw.auth.access import Access, AccessError, CardGroup, Share, parse_until
from edgegw.auth.cardcsv import csv_card_groups, with_csv_groups
from edgegw.auth.idtags import is_lossless, variants
from edgegw.auth.locallist import (
    AuthStatus,
    Card,
    CardError,
    CsvImportError,
    DuplicateCardError,
    UnknownCardError,
    cards_to_csv,
    format_expiry,
)
from edgegw.control.card_base import CardBase
from edgegw.control.card_text import (
    MAX_PAGE,
    PAGE_BYTES,
    access_json,
    card_json,
    effective,
    expiry_arg,
    haystack,
    names_arg,
    not_found,
    read_csv,
    share_json,
    status_arg,
)
from edgegw.control.optable import OpSpec, run_op
from edgegw.control.protocol import ControlError, ErrorCode, get_arg


class CardService(CardBase):
    """The ``cards.*`` ops on an authorizer; see the module docstring.

    ``pusher`` and ``connected`` are the daemon's list pusher and the ids of the connected
    chargers (absent when the CLI works on the store directly). Every handler takes the op's
    JSON arguments and returns JSON, or raises :class:`ControlError` with a message for the
    person at the terminal.
    """

    async def run(self, op: str, args: Mapping[str, Any]) -> Any:
        """Run the ``cards.*`` op ``op`` (what the CLI does without a daemon)."""
        return await run_op(CARD_OPS, self, op, args)

    # ------------------------------------------------------------------ reading

    async def list_cards(self, args: dict[str, Any]) -> dict[str, Any]:
        """Cards matching ``text`` (in id, owner, label, parent or chargers) and ``status``."""
        text = get_arg(args, "text", str, "").strip().casefold()
        status = status_arg(args, "status")
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
            if (not text or text in haystack(c)) and (status is None or effective(c, now) is status)
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
        access = self._auth.access
        for card in every[offset : offset + limit]:
            row = cards_to_csv([card], access)[len(header) :]
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
        expiry = expiry_arg(args, "expiry")
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
                status=status_arg(args, "status") or AuthStatus.ACCEPTED,
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
        status = status_arg(args, "status")
        if status is not None:
            changes["status"] = status
        if args.get("expiry") is not None:
            changes["expiry"] = expiry_arg(args, "expiry")
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
            raise not_found(old.id.canonical) from None
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
            raise not_found(card.id.canonical) from None
        action = "blocked" if status is AuthStatus.BLOCKED else "unblocked"
        return await self._changed(card, action, args, [])

    async def remove(self, args: dict[str, Any]) -> dict[str, Any]:
        card, _ = self._find(args)
        try:
            card = await self._auth.remove(card.id)
        except UnknownCardError:
            raise not_found(card.id.canonical) from None
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
        in_file = {c.key for c in cards}
        groups = {k: v for k, v in (csv_card_groups(text) or {}).items() if k in in_file}
        _, group_warnings, regrouped = with_csv_groups(self._auth.access, groups)
        result: dict[str, Any] = {
            "outcome": "refused",
            "dry_run": dry_run,
            "replace": replace,
            "added": 0,
            "updated": 0,
            "unchanged": 0,
            "removed": 0,
            "regrouped": 0,
            "errors": [{"line": line, "message": message} for line, message in errors],
            "warnings": self._unknown_groups(cards) + group_warnings,
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
            result.update(self._plan(cards, replace), outcome="dry_run", regrouped=regrouped)
            return result
        try:
            done = await self._auth.import_csv(cards_to_csv(cards), replace=replace)
        except CsvImportError as exc:  # the cards written back did not read back: a bug
            raise ControlError(
                ErrorCode.INTERNAL, f"the checked cards did not import: {exc}"
            ) from None
        if groups:
            regrouped = 0

            def regroup(access: Access) -> Access:
                nonlocal regrouped
                access, _, regrouped = with_csv_groups(access, groups)
                return access

            await self._access(regroup)
        result.update(
            outcome="imported",
            added=done.added,
            updated=done.updated,
            unchanged=done.unchanged,
            removed=done.removed,
            regrouped=regrouped,
        )
        if done.added or done.updated or done.removed or regrouped:
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

    # ------------------------------------------------------------------ groups and shares

    async def groups(self, args: dict[str, Any]) -> dict[str, Any]:
        """Charger groups, card groups (with their cards) and shares."""
        return access_json(self._auth, self._clock())

    async def charger_group(self, args: dict[str, Any]) -> dict[str, Any]:
        """Set the charger group ``name`` to ``chargers`` (none, or ``delete``: delete it)."""
        name = get_arg(args, "name", str).strip()
        chargers = frozenset() if get_arg(args, "delete", bool, False) else names_arg(args)
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
        add = {self._find({"card": t})[0].key for t in names_arg(args, "add")}
        remove = {self._find({"card": t})[0].key for t in names_arg(args, "remove")}
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
