"""Control-socket operations on charging sessions: the list and the monthly report.

Both are read-only (open to the ``edgegw`` group). Each call reads the database on its own
read-only connection, so a long export never holds up the daemon's writes. Idtags are matched to
cards through the running card authority (its cards, and each charger's detected format); the
matcher is rebuilt when the cards change. Times come as ISO-8601 UTC strings (``*_at``) and as
Unix seconds (``*_ts``).

``sessions.list`` filters by owner with ``owner`` (a card's owner, whole name in any case; an
owner no card has is refused rather than answered with nothing) or ``no_owner=true`` (unknown
cards and cards without an owner, the report's owner-less group). ``owner=""`` is refused, not
read as "no owner": an empty variable in a caller must not turn into a different question.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiosqlite

from edgegw.auth.chargerformats import configured_formats
from edgegw.control.protocol import ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer
from edgegw.store.db import StoreError
from edgegw.store.sessions import (
    CardResolver,
    Month,
    SessionFilter,
    SessionQueries,
    open_read_only,
)

if TYPE_CHECKING:
    from edgegw.auth.authorizer import Authorizer
    from edgegw.config import Config
    from edgegw.store.store import Store

MAX_LIMIT: Final = 1000
"""Most sessions in one answer: 1000 sessions stay well under the protocol's line limit."""


class SessionOps:
    """Registers the session operations on a :class:`ControlServer`."""

    def __init__(
        self,
        store: Store,
        authorizer: Authorizer,
        config: Callable[[], Config],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._authorizer = authorizer
        self._config = config
        self._clock = clock
        self._resolver: CardResolver | None = None
        self._watching = False

    def register(self, server: ControlServer) -> None:
        server.register(
            "sessions.list",
            self.list_sessions,
            description="Charging sessions (args: since, until, card, charger, owner, "
            "no_owner, limit, order=newest|oldest, after).",
        )
        server.register(
            "sessions.report",
            self.report,
            description="Energy per card and owner for a month (args: month=YYYY-MM, tz).",
        )

    async def list_sessions(self, args: dict[str, Any]) -> dict[str, Any]:
        limit = get_arg(args, "limit", int, 100)
        if not 1 <= limit <= MAX_LIMIT:
            raise ControlError(ErrorCode.BAD_ARGS, f"limit must be between 1 and {MAX_LIMIT}")
        order = get_arg(args, "order", str, "newest")
        if order not in ("newest", "oldest"):
            raise ControlError(ErrorCode.BAD_ARGS, "order must be 'newest' or 'oldest'")
        after = get_arg(args, "after", int, None)
        owner = get_arg(args, "owner", str, None)
        no_owner = get_arg(args, "no_owner", bool, False)
        if owner is not None and not owner.strip():
            raise ControlError(
                ErrorCode.BAD_ARGS,
                "argument 'owner' is empty: give an owner's name, or no_owner=true for the "
                "sessions of unknown cards and of cards without an owner",
            )
        if owner is not None and no_owner:
            raise ControlError(
                ErrorCode.BAD_ARGS,
                "give 'owner' or 'no_owner', not both: together they match nothing",
            )
        cards = self._cards()
        card_text = get_arg(args, "card", str, None)
        try:
            if owner is not None:
                cards.check_owner(owner)
            where = SessionFilter(
                since=get_arg(args, "since", float, None),
                until=get_arg(args, "until", float, None),
                card=None if card_text is None else cards.card_id(card_text),
                charger=get_arg(args, "charger", str, None),
                owner=owner,
                no_owner=no_owner,
            )
        except ValueError as exc:
            raise ControlError(ErrorCode.BAD_ARGS, str(exc)) from None
        async with self._reader() as conn:
            sessions, cursor = await SessionQueries(conn, cards).page(
                where, limit=limit, after=after, newest_first=order == "newest"
            )
        return {"sessions": [s.to_json() for s in sessions], "next": cursor}

    async def report(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            month = Month.parse(get_arg(args, "month", str))
        except ValueError as exc:
            raise ControlError(ErrorCode.BAD_ARGS, str(exc)) from None
        tz_name = get_arg(args, "tz", str, "UTC")
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ControlError(
                ErrorCode.BAD_ARGS, f"unknown time zone {tz_name!r}; use e.g. Europe/Brussels"
            ) from None
        cards = self._cards()
        async with self._reader() as conn:
            report = await SessionQueries(conn, cards).report(month, tz, now=self._clock())
        return report.to_json()

    def _cards(self) -> CardResolver:
        authorizer = self._authorizer
        if not self._watching:
            authorizer.on_change(self._cards_changed)
            self._watching = True
        if self._resolver is None:
            self._resolver = CardResolver(
                authorizer.cards(),
                authorizer.charger_format,
                configured_formats(self._config()),
                access=authorizer.access,
                tariffs=self._config().tariffs,
            )
        return self._resolver

    def _cards_changed(self) -> None:
        self._resolver = None  # rebuilt at the next call

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[aiosqlite.Connection]:
        store = self._store
        if str(store.db.path) == ":memory:":
            yield store.db.conn  # no file to open twice (tests)
            return
        try:
            async with open_read_only(store.db.path) as conn:
                yield conn
        except StoreError as exc:
            raise ControlError(ErrorCode.UNAVAILABLE, str(exc)) from None
