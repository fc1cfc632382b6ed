"""Control-socket operations on chargers: what is configured, what is connected, who knocked.

A charger has two records: its section in the configuration file (the installer's intent: id,
password, model, idTag format, currents) and its row in the store (what the gateway saw: last
connection, BootNotification details, refused attempts, the idTag format detected from its
taps). :class:`ChargerService` joins them. The daemon answers the ``chargers.*`` ops with it
(:class:`ChargerOps`); the CLI uses the same service on a store it opens itself when the daemon
is not running, so ``edgegw chargers list`` looks the same either way.

Chargers are added, removed and approved by editing the configuration file (the CLI does that,
keeping the installer's comments); the daemon takes the change on a reload or restart.
``chargers.pending`` lists the identities that tried to connect and were refused, which is what
the installer approves. ``chargers.wrong_urls`` lists the handshakes refused because their
path held no identity (``/ocpp``, ``/CP-1``, ``/ocpp/CP-1/CP-1``), with the URL each charger
should use: the daemon keeps them in memory; without it they are read back from the journal.

``last_seen`` is the charger's last message while the daemon runs (kept in memory by the live
state, never written per message); the store has the time of its last connection or
disconnection. A caretaker's runtime maximum (:mod:`edgegw.store.overrides`) is shown as the
charger's effective current range.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Final

from edgegw.auth.chargerformats import configured_formats
from edgegw.auth.idtags import IdTagFormat
from edgegw.auth.listpush import ListPusher
from edgegw.config import ChargerConfig, Config
from edgegw.control.optable import OpSpec, register_ops, run_op
from edgegw.control.protocol import ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer
from edgegw.livestate import link_state
from edgegw.store.cards import CardStore, DetectedFormat
from edgegw.store.journal import EventFilter, read_events
from edgegw.store.overrides import ChargerOverride, ChargerOverrides
from edgegw.store.store import ChargerRow, Store

if TYPE_CHECKING:
    from edgegw.auth.authorizer import Authorizer
    from edgegw.proxy.session import ChargerSession

_NEVER_SEEN: Final = "never seen"
WRONG_URL_DAYS: Final = 7
"""Without the daemon, refused handshakes of so many days are read back from the journal."""


class ChargerService:
    """The ``chargers.*`` ops on a configuration and a store; see the module docstring.

    ``detected`` gives the idTag format detected for a charger (the daemon's authorizer knows
    the latest; the CLI reads the store). ``connected`` lists the connected chargers and
    ``link_state`` says how a charger's cloud link is (both only in the daemon).
    """

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        detected: Callable[[str], DetectedFormat | None],
        connected: Callable[[], Collection[str]] = tuple,
        link_state: Callable[[str], str | None] = lambda _charger_id: None,
        pusher: ListPusher | None = None,
        clock: Callable[[], float] = time.time,
        last_message: Callable[[str], float | None] = lambda _charger_id: None,
        wrong_urls: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self._config = config
        self._formats = configured_formats(config)
        self._store = store
        self._detected = detected
        self._connected = connected
        self._link_state = link_state
        self._pusher = pusher
        self._clock = clock
        self._last_message = last_message
        self._wrong_urls = wrong_urls

    async def run(self, op: str, args: Mapping[str, Any]) -> Any:
        """Run the ``chargers.*`` op ``op`` (what the CLI does without a daemon)."""
        return await run_op(CHARGER_OPS, self, op, args)

    async def list_chargers(self, args: dict[str, Any]) -> dict[str, Any]:
        """Every configured charger, and every other identity the gateway let in."""
        rows = {r.id: r for r in await self._store.chargers()}
        connected = set(self._connected())
        overrides = await self._overrides()
        out = [
            self._describe(c.id, c, rows.get(c.id), connected, overrides.get(c.id))
            for c in self._config.chargers
        ]
        configured = {c.id for c in self._config.chargers}
        out += [
            self._describe(row.id, None, row, connected, None)
            for row in rows.values()
            if row.id not in configured and (row.state == "known" or row.id in connected)
        ]
        pending = [r for r in rows.values() if _pending(r, configured)]
        return {"chargers": out, "pending": len(pending)}

    async def show(self, args: dict[str, Any]) -> dict[str, Any]:
        """One charger, with its connectors and its local list."""
        charger_id = get_arg(args, "charger", str)
        config = self._config.charger(charger_id)
        row = next((r for r in await self._store.chargers() if r.id == charger_id), None)
        if config is None and row is None:
            raise self._unknown(charger_id)
        override = (await self._overrides()).get(charger_id)
        out = self._describe(charger_id, config, row, set(self._connected()), override)
        connectors = await self._store.connector_status(charger_id)
        out["connectors"] = [
            {"connector": number, "status": status, "error_code": error}
            for number, (status, error) in sorted(connectors.items())
        ]
        state = await CardStore(self._store.db).list_state(charger_id)
        local_list: dict[str, Any] = {
            "version": state.version,
            "capabilities": state.capabilities or None,
        }
        push = self._pusher.status(charger_id) if self._pusher is not None else None
        if push is not None:
            local_list.update(
                entries=push.entries,
                left_out=push.left_out,
                refused_left_out=push.refused_left_out,
                in_step=push.synced,
                last_error=push.last_error,
            )
        out["local_list"] = local_list
        return out

    async def pending(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Identities refused at the handshake that are not configured, newest first.

        Configured chargers that never got in (a wrong password from the first attempt on)
        are listed too, with ``configured`` set: they need a password, not an approval.
        """
        configured = {c.id for c in self._config.chargers}
        rows = [r for r in await self._store.chargers() if _pending(r, configured)]
        rows.sort(key=lambda r: r.last_seen, reverse=True)
        return [
            {
                "id": r.id,
                "configured": r.id in configured,
                "attempts": r.refused_count,
                "reason": r.refused_reason,
                "address": r.last_address,
                "first_seen": r.first_seen,
                "last_seen": r.last_seen,
                "next_step": (
                    f"edgegw chargers set-password {r.id}"
                    if r.id in configured
                    else f"edgegw chargers approve {r.id}"
                ),
            }
            for r in rows
        ]

    async def wrong_urls(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Handshakes refused because the path held no charger identity, newest first, with
        the URL each charger should use (see :class:`edgegw.proxy.server.WrongUrls`)."""
        if self._wrong_urls is not None:
            return self._wrong_urls()
        since = self._clock() - WRONG_URL_DAYS * 86400
        entries = await read_events(
            self._store.db, 500, EventFilter(kinds=("handshake_refused",), since=since)
        )
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in entries:  # newest first: the first of each is its latest record
            data = entry.data
            key = (str(data.get("address")), str(data.get("path")))
            if "url" in data and key not in found:
                found[key] = {**data, "last_seen": entry.at, "from_journal": True}
        return list(found.values())

    # ------------------------------------------------------------------ helpers

    async def _overrides(self) -> dict[str, ChargerOverride]:
        return await ChargerOverrides(self._store.db).load()

    def _describe(
        self,
        charger_id: str,
        config: ChargerConfig | None,
        row: ChargerRow | None,
        connected: set[str],
        override: ChargerOverride | None,
    ) -> dict[str, Any]:
        fmt, source = self.format_of(charger_id)
        detected = self._detected(charger_id)
        out: dict[str, Any] = {
            "id": charger_id,
            "configured": config is not None,
            "connected": charger_id in connected,
            "state": _NEVER_SEEN if row is None else row.state,
            "cloud_link": self._link_state(charger_id),
            "idtag_format": fmt.value,
            "idtag_format_source": source,
            "detected_format": None
            if detected is None
            else {"format": detected.fmt.value, "since": detected.seen_at},
        }
        if config is not None:
            out.update(
                label=config.label,
                model=config.model,
                password=config.password_hash is not None,
                min_current_a=config.min_current_a,
                max_current_a=config.max_current_a,
                fallback_current_a=config.fallback_current_a,
                priority=config.priority,
                phases=config.phases,
                caretaker_max_a=None if override is None else override.max_current_a,
                free_charging=override is not None and override.free_charging,
                effective_max_a=config.max_current_a
                if override is None or override.max_current_a is None
                else min(config.max_current_a, override.max_current_a),
            )
        if row is not None:
            message = self._last_message(charger_id)
            out.update(
                address=row.last_address,
                first_seen=row.first_seen,
                last_seen=row.last_seen if message is None else max(message, row.last_seen),
                last_connected=row.last_seen if row.connected else None,
                vendor=row.vendor,
                reported_model=row.model,
                serial=row.serial,
                firmware=row.firmware,
                last_boot=row.last_boot,
                refused={"count": row.refused_count, "reason": row.refused_reason}
                if row.refused_count
                else None,
            )
        return out

    def format_of(self, charger_id: str) -> tuple[IdTagFormat, str]:
        """How the charger writes card ids, and whether that is configured, detected or unknown."""
        configured = self._formats.get(charger_id)
        if configured is not None:
            return configured, "configured"  # the charger's own setting, else its model's
        detected = self._detected(charger_id)
        if detected is not None:
            return detected.fmt, "detected"
        return IdTagFormat.AUTO, "unknown"

    def _unknown(self, charger_id: str) -> ControlError:
        ids = [c.id for c in self._config.chargers]
        near = [c for c in ids if c.casefold() == charger_id.casefold()]
        hint = f" Did you mean {near[0]}? Charger ids are case-sensitive." if near else ""
        listed = ", ".join(ids) if ids else "none"
        return ControlError(
            ErrorCode.NOT_FOUND,
            f"no charger {charger_id!r}: it is not in the configuration and never connected "
            f"(configured: {listed}).{hint} Add it with `edgegw chargers add {charger_id}`.",
        )


def _pending(row: ChargerRow, configured: Collection[str]) -> bool:
    if not row.refused_count:
        return False
    return row.id not in configured or row.state == "pending"


CHARGER_OPS: Final[Mapping[str, OpSpec[ChargerService]]] = {
    "chargers.list": OpSpec(
        ChargerService.list_chargers,
        False,
        "Configured chargers with what the gateway saw of them, and the count of pending ones.",
    ),
    "chargers.show": OpSpec(
        ChargerService.show, False, "One charger, its connectors and local list (args: charger)."
    ),
    "chargers.pending": OpSpec(
        ChargerService.pending,
        False,
        "Identities that tried to connect and were refused (to approve or give a password).",
    ),
    "chargers.wrong_urls": OpSpec(
        ChargerService.wrong_urls,
        False,
        "Handshakes refused because their path held no charger identity, with the URL to use.",
    ),
}


class ChargerOps:
    """Registers the ``chargers.*`` operations on a :class:`ControlServer`, over the daemon's
    configuration in force (``config``), ``store``, ``authorizer``, connected chargers'
    ``sessions``, list ``pusher``, when each charger last sent something (``last_message``) and
    the handshakes refused for a wrong URL (``wrong_urls``)."""

    def __init__(
        self,
        config: Callable[[], Config],
        store: Store,
        authorizer: Authorizer,
        sessions: Mapping[str, ChargerSession],
        *,
        pusher: ListPusher | None = None,
        last_message: Callable[[str], float | None] = lambda _id: None,
        wrong_urls: Callable[[], list[dict[str, Any]]] = list,
    ) -> None:
        self._config = config
        self._store = store
        self._authorizer = authorizer
        self._sessions = sessions
        self._pusher = pusher
        self._last_message = last_message
        self._wrong_urls = wrong_urls

    def register(self, server: ControlServer) -> None:
        register_ops(server, CHARGER_OPS, self.service)

    def service(self) -> ChargerService:
        config, sessions = self._config(), self._sessions
        return ChargerService(
            config,
            self._store,
            detected=self._authorizer.detected_format,
            connected=lambda: list(sessions),
            link_state=lambda charger_id: link_state(config, sessions.get(charger_id)),
            pusher=self._pusher,
            last_message=self._last_message,
            wrong_urls=self._wrong_urls,
        )
