"""The daemon's operations on the control socket: what the CLI and the TUI can see and do.

Read-only operations are open to the ``edgegw`` group; operations that change something are
admin-only (root or the daemon's user). Each returns plain JSON; times are Unix seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from edgegw import __version__
from edgegw.control.message_ops import MessageOps
from edgegw.control.protocol import ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer
from edgegw.livestate import link_state
from edgegw.services.errors import ReloadError
from edgegw.store.journal import EventFilter, Journal, JournalEntry, read_events

EVENTS_TOPIC = "journal"
"""Every new journal entry is pushed on this topic (``edgegw events --follow``)."""

if TYPE_CHECKING:
    from edgegw.config import Config
    from edgegw.proxy.session import ChargerSession
    from edgegw.reload import ReloadPlan
    from edgegw.store.store import Store

log = logging.getLogger(__name__)


class GatewayOps:
    """Registers the gateway's operations on a :class:`ControlServer`.

    Over the daemon's parts: its ``store``, its configuration in force (``config``), its
    connected chargers' ``sessions``, its ``journal`` (None: events read from the store), its
    ``reload`` (refused with :class:`ReloadError`; without it: not running),
    ``outbox_requeued`` (every session reads its outbox again; without it: nothing, the
    daemon reads the outbox when it starts), and when each charger last sent something
    (``last_message``).
    """

    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        sessions: Mapping[str, ChargerSession],
        *,
        reload: Callable[[], Awaitable[ReloadPlan]] | None = None,
        outbox_requeued: Callable[[str | None], Awaitable[None]] | None = None,
        journal: Journal | None = None,
        last_message: Callable[[str], float | None] = lambda _id: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._config = config
        self._sessions = sessions
        self._reload = reload or _not_running
        self._outbox_requeued = outbox_requeued or _read_at_start
        self._journal = journal
        self._last_message = last_message
        self._clock = clock
        self._started = clock()

    @classmethod
    def for_store(cls, config: Config, store: Store) -> GatewayOps:
        """The ops a CLI answers from the store of a daemon that is not running: no charger
        connected, nothing to reload, and requeued messages wait for the daemon."""
        return cls(store, lambda: config, {})

    def register(self, server: ControlServer) -> None:
        server.register("status", self.status, description="Daemon, cloud link and chargers.")
        server.register(
            "sync.status", self.sync_status, description="Per charger: queued, parked, oldest."
        )
        server.register("sync.parked", self.sync_parked, description="Messages the cloud refused.")
        server.register(
            "sync.retry",
            self.sync_retry,
            admin=True,
            description="Put parked messages back in the queue (args: charger).",
        )
        server.register(
            "events",
            self.events,
            description="The journal, newest first (args: limit, kinds, charger, since, until); "
            "new entries are pushed on topic 'journal'.",
        )
        journal = self._journal
        if journal is not None:
            journal.on_record(lambda entry: _publish(server, entry))
        MessageOps(self._store.messages).register(server)
        server.register(
            "config.reload",
            self.config_reload,
            admin=True,
            description="Re-read the configuration file; apply charger changes that can go live.",
        )

    async def status(self, args: dict[str, Any]) -> dict[str, Any]:
        config = self._config()
        chargers = []
        for row in await self._store.chargers():
            session = self._sessions.get(row.id)
            message = self._last_message(row.id)
            chargers.append(
                {
                    "id": row.id,
                    "state": row.state,
                    "connected": session is not None,
                    "cloud_link": link_state(config, session),
                    "vendor": row.vendor,
                    "model": row.model,
                    "last_seen": row.last_seen if message is None else max(message, row.last_seen),
                    "address": row.last_address,
                }
            )
        return {
            "version": __version__,
            "uptime_s": round(self._clock() - self._started, 1),
            "cloud": config.cloud.url if config.cloud else None,
            "chargers": chargers,
        }

    async def sync_status(self, args: dict[str, Any]) -> dict[str, Any]:
        config = self._config()
        now = self._clock()
        rows = {r.charger_id: r for r in await self._store.outbox.status()}
        ids = sorted(set(rows) | set(self._sessions) | {c.id for c in config.chargers})
        chargers = []
        for charger_id in ids:
            row = rows.get(charger_id)
            oldest = row.oldest_queued_at if row else None
            chargers.append(
                {
                    "id": charger_id,
                    "connected": charger_id in self._sessions,
                    "cloud_link": link_state(config, self._sessions.get(charger_id)),
                    "queued": row.queued if row else 0,
                    "parked": row.parked if row else 0,
                    "oldest_age_s": None if oldest is None else round(now - oldest, 1),
                }
            )
        return {
            "queued": sum(c["queued"] for c in chargers),
            "parked": sum(c["parked"] for c in chargers),
            "chargers": chargers,
        }

    async def sync_parked(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        charger = get_arg(args, "charger", str, None)
        return [
            {
                "seq": p.seq,
                "charger": p.charger_id,
                "action": p.action,
                "payload": p.payload,
                "queued_at": p.queued_at,
                "attempts": p.attempts,
                "error": p.last_error,
            }
            for p in await self._store.outbox.parked(charger)
        ]

    async def sync_retry(self, args: dict[str, Any]) -> dict[str, Any]:
        charger = get_arg(args, "charger", str, None)
        count = await self._store.outbox.requeue_parked(charger)
        await self._outbox_requeued(charger)  # absent chargers' messages go too
        return {"requeued": count}

    async def config_reload(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            plan = await self._reload()
        except ReloadError as exc:
            raise ControlError(ErrorCode.CONFLICT, f"configuration not reloaded: {exc}") from None
        return {
            "applied": plan.applicable and not plan.empty,
            "added": plan.added,
            "removed": plan.removed,
            "changed": plan.changed,
            "needs_restart": plan.needs_restart,
            "message": plan.message(),
        }

    async def events(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """The journal (written and not yet written entries), newest first."""
        limit = get_arg(args, "limit", int, 100)
        if not 1 <= limit <= 10000:
            raise ControlError(ErrorCode.BAD_ARGS, "limit must be between 1 and 10000")
        kinds = get_arg(args, "kinds", list, None) or []
        if not all(isinstance(k, str) and k for k in kinds):
            raise ControlError(ErrorCode.BAD_ARGS, "kinds must be a list of event kinds")
        where = EventFilter(
            kinds=tuple(kinds),
            charger_id=get_arg(args, "charger", str, None),
            since=get_arg(args, "since", float, None),
            until=get_arg(args, "until", float, None),
        )
        journal = self._journal
        if journal is not None:
            found = await journal.read(limit, where)
        else:
            found = await read_events(self._store.db, limit, where)
        return [entry.as_dict() for entry in found]


async def _not_running() -> ReloadPlan:
    raise ReloadError("the daemon is not running")


async def _read_at_start(charger_id: str | None) -> None:
    """Requeued messages wait for the daemon: it reads the outbox when it starts."""


def _publish(server: ControlServer, entry: JournalEntry) -> None:
    try:
        server.publish(EVENTS_TOPIC, entry.as_dict())
    except (TypeError, ValueError) as exc:  # not JSON, or over the line limit
        log.warning("journal entry %s not pushed to followers: %s", entry.kind, exc)
