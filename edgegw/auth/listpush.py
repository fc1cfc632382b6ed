"""Keeps each charger's own local authorisation list in step with the gateway's cards.

Why push lists at all: a charger that holds the list decides at once, without a round trip, and
keeps deciding when it loses the gateway (a switch reboots, a cable is cut). The gateway owns
every charger's list (it answers the cloud's ``SendLocalList`` itself, see
:mod:`edgegw.auth.authorizer`), so this module is the only writer of those lists.

What a charger gets: :meth:`Authorizer.local_list` for that charger (installer cards allowed on
it plus the cloud's list; valid cards, then Blocked ones so a lost card is refused at once, then
other refusals), written **in the charger's idTag format** (a KEBA gets reversed hex), cut to
its ``LocalAuthListMaxLength``. Two cards that look the same on that charger keep the more
restrictive entry; what does not fit or cannot be written is logged (valid cards left out as a
warning; refusals cut from the end of a short list only noted) and counted apart in
:class:`PushStatus`, and the gateway still decides for those cards when the charger asks.

How (OCPP 1.6 §5.15, §9.4):

* On connect it reads ``LocalAuthListEnabled``, ``LocalAuthListMaxLength``,
  ``SendLocalListMaxLength`` and ``SupportedFeatureProfiles`` (GetConfiguration), records them
  in ``chargers.capabilities`` and skips chargers without ``LocalAuthListManagement`` or with
  the list disabled. A 2.0.1 station is asked its ``LocalAuthListCtrlr`` with GetVariables
  instead and gets every message in 2.0.1 form (:mod:`edgegw.auth.listpush201`); a 2.1 one is
  not managed (:data:`V2_NOT_MANAGED`). Then
  GetLocalListVersion says whether the charger still holds what was
  pushed last (the version, and a digest of the content kept in the store, survive restarts).
* When it does, only the differences go out as a ``Differential`` (unless they are as many as
  the entries, then a Full is no longer); otherwise a ``Full``. A list
  longer than ``SendLocalListMaxLength`` is sent as a Full of the first part followed by
  Differentials. A Differential answered ``Failed`` or ``VersionMismatch`` is followed by a Full.
* Each charger has its own worker task while there is something to do (the checks on connect,
  a change to send, a retry), so a slow charger holds up nobody else; a charger in step has no
  task. Changes are coalesced: the worker waits ``settle`` seconds after the first change of a
  burst and then sends one Differential for all of it (blocking ten cards is one message).
* A call that fails (timeout, CALLERROR, lost connection) makes the content unknown; the
  worker tries again with backoff while the charger stays connected.

The pusher talks to chargers only through the injected ``call(charger_id, action, payload)``
(``version=`` the 2.x version a call is written in).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from edgegw.auth import listpush201 as v201
from edgegw.auth.cardindex import LiteralToken
from edgegw.auth.cloudlist201 import entry_201
from edgegw.auth.idtags import IdTagFormat, UnrepresentableError, render
from edgegw.auth.listrendered import (
    Rendered,
    apply_entries,
    cut,
    diff_lists,
    digest,
    key_bool,
    key_int,
    some,
)
from edgegw.auth.locallist import AuthStatus, ListEntry
from edgegw.ocpp.versions import OCPP201, is_v2
from edgegw.store.cards import CardStore
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]


class CallFn(Protocol):
    """``call(charger_id, action, payload)`` returns the charger's answer payload; raises when
    the call fails (CALLERROR, timeout, not connected). ``version`` is given for a 2.x call
    only (the OCPP version it is written in)."""

    def __call__(
        self, charger_id: str, action: str, payload: JsonDict, *, version: str = ...
    ) -> Awaitable[JsonDict]: ...


PROFILE: Final = "LocalAuthListManagement"
PROBED_KEYS: Final = (
    "LocalAuthListEnabled",
    "LocalAuthListMaxLength",
    "SendLocalListMaxLength",
    "SupportedFeatureProfiles",
)
V2_NOT_MANAGED: Final = "OCPP 2.1: local lists not managed yet"
"""Why a 2.1 charger's list is not pushed (2.0.1 stations' are: :mod:`listpush201`)."""


class _NotSupported(Exception):
    """The charger answered NotSupported to SendLocalList."""


@dataclass(frozen=True, slots=True)
class ListCapabilities:
    """What a charger said about its local list (the ``local_list`` capabilities member)."""

    supported: bool
    enabled: bool | None = None
    max_length: int | None = None
    """``LocalAuthListMaxLength``; None when the charger did not say."""
    send_max: int | None = None
    """``SendLocalListMaxLength`` (2.0.1: ``ItemsPerMessage``); None when the charger did not
    say."""
    reason: str = ""
    bytes_max: int | None = None
    """2.0.1 ``BytesPerMessage``; None for 1.6 or when the station did not say."""

    def to_json(self) -> JsonDict:
        out: JsonDict = {
            "supported": self.supported,
            "enabled": self.enabled,
            "max_length": self.max_length,
            "send_max": self.send_max,
            "reason": self.reason,
        }
        if self.bytes_max is not None:
            out["bytes_max"] = self.bytes_max
        return out


@dataclass(frozen=True, slots=True)
class PushStatus:
    """How one charger's list stands, for the CLI and the TUI."""

    charger_id: str
    connected: bool
    capabilities: ListCapabilities | None
    version: int | None
    entries: int | None
    """Entries the charger holds, when known."""
    left_out: int
    """Valid (Accepted) cards not on its list: too many for it, or not writable in its format;
    the gateway still decides for them when asked."""
    refused_left_out: int
    """Refused cards (Blocked, Invalid, Expired) cut from the end of its list the same way
    (a short list keeps the valid cards first): the gateway refuses them when asked."""
    synced: bool
    last_error: str | None


@dataclass(slots=True)
class _Charger:
    charger_id: str
    dirty: bool = False  # the list changed since the worker last computed it
    idle: bool = False  # the worker has nothing left to do (or there is none)
    # made by the first wait_idle only: an Event costs ~0.7 KiB, times every connected charger
    idle_event: asyncio.Event | None = None
    connected: bool = False
    active: bool = False
    task: asyncio.Task[None] | None = None
    caps: ListCapabilities | None = None
    version: int | None = None
    pushed: Rendered | None = None
    left_out: int = 0
    refused_left_out: int = 0
    failures: int = 0
    last_error: str | None = None
    reported: str = ""  # the last overflow / collision message logged, to log each once
    ocpp: str | None = None  # the OCPP version it speaks (None: 1.6 or not known)
    # 2.0.1: the IdTokenType type of each entry by its key (absent: a 1.6 token, Central)
    token_types: dict[str, str] = field(default_factory=dict)

    @property
    def v201(self) -> bool:
        return self.ocpp == OCPP201

    def set_idle(self, idle: bool) -> None:
        self.idle = idle
        if self.idle_event is not None:
            if idle:
                self.idle_event.set()
            else:
                self.idle_event.clear()

    async def wait_idle(self) -> None:
        if self.idle:
            return
        if self.idle_event is None:
            self.idle_event = asyncio.Event()
        await self.idle_event.wait()


class ListPusher:
    """Pushes each connected charger's local list; see the module docstring.

    ``entries(charger_id)`` gives the cards the list should hold, best first, and
    ``charger_format(charger_id)`` how the charger writes them (both from the
    :class:`~edgegw.auth.authorizer.Authorizer`). Register :meth:`list_changed` with
    ``Authorizer.on_change`` and call :meth:`charger_connected` / :meth:`charger_disconnected`
    from the proxy.
    """

    def __init__(
        self,
        store: CardStore,
        entries: Callable[[str], Sequence[ListEntry]],
        charger_format: Callable[[str], IdTagFormat],
        call: CallFn,
        *,
        settle: float = 0.5,
        call_timeout: float = 30.0,
        retry_min: float = 5.0,
        retry_max: float = 300.0,
    ) -> None:
        self._store = store
        self._entries = entries
        self._format = charger_format
        self._call = call
        self._settle = settle
        self._call_timeout = call_timeout
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._chargers: dict[str, _Charger] = {}
        self._arrivals: dict[str, asyncio.Event] = {}  # wait_idle on a charger not seen yet
        self._tasks = TaskOwner("listpush")
        self._closed = False

    # ------------------------------------------------------------ events in

    def charger_connected(self, charger_id: str, version: str | None = None) -> None:
        """Start (or restart) keeping ``charger_id``'s list in step; ``version``, the OCPP
        version it speaks: a 2.x charger is only recorded as not managed."""
        if self._closed:
            return
        ch = self._chargers.get(charger_id)
        if ch is None:
            ch = self._chargers[charger_id] = _Charger(charger_id)
        if ch.task is not None:
            ch.task.cancel("charger reconnected")
        ch.connected = True
        ch.active = True
        ch.ocpp = version
        ch.set_idle(False)
        ch.task = self._tasks.spawn(self._run(ch, checked=False), charger_id)
        arrival = self._arrivals.pop(charger_id, None)
        if arrival is not None:
            arrival.set()

    def charger_disconnected(self, charger_id: str) -> None:
        ch = self._chargers.get(charger_id)
        if ch is None:
            return
        ch.connected = False
        ch.active = False
        if ch.task is not None:
            ch.task.cancel("charger disconnected")
            ch.task = None
        ch.set_idle(True)

    def list_changed(self) -> None:
        """The effective list changed: every connected charger gets a (coalesced) update (by
        its worker, started for it when the charger had none)."""
        if self._closed:
            return
        for ch in self._chargers.values():
            if ch.active:
                ch.dirty = True
                ch.set_idle(False)
                if ch.task is None:
                    ch.task = self._tasks.spawn(self._run(ch, checked=True), ch.charger_id)

    # ------------------------------------------------------------ status

    def status(self, charger_id: str) -> PushStatus | None:
        ch = self._chargers.get(charger_id)
        if ch is None:
            return None
        return PushStatus(
            charger_id=charger_id,
            connected=ch.connected,
            capabilities=ch.caps,
            version=ch.version,
            entries=None if ch.pushed is None else len(ch.pushed),
            left_out=ch.left_out,
            refused_left_out=ch.refused_left_out,
            synced=ch.idle and ch.active and ch.last_error is None,
            last_error=ch.last_error,
        )

    async def wait_idle(self, charger_id: str, timeout: float = 10.0) -> PushStatus:
        """Wait until the charger's worker has nothing left to do (in step, unsupported, or
        disconnected) and return its status; a charger not connected yet is waited for."""
        async with asyncio.timeout(timeout):
            ch = self._chargers.get(charger_id)
            if ch is None:
                await self._arrivals.setdefault(charger_id, asyncio.Event()).wait()
                ch = self._chargers[charger_id]
            await ch.wait_idle()
        status = self.status(charger_id)
        assert status is not None
        return status

    async def close(self) -> None:
        """Stop every worker (a push in flight is abandoned; the next connect re-checks)."""
        self._closed = True
        await self._tasks.close()

    # ------------------------------------------------------------ the worker

    async def _run(self, ch: _Charger, *, checked: bool) -> None:
        """The charger's worker: the checks on connect and the updates after them (``checked``:
        they were made, only the changes are to send); ends when nothing is left to do."""
        while True:
            try:
                if checked and ch.caps is not None:
                    await self._keep(ch, ch.caps, None)
                else:
                    await self._session(ch)
                if ch.task is asyncio.current_task():  # (not if replaced on a reconnection)
                    ch.task = None  # nothing left to do: list_changed starts the next worker
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ch.pushed = None  # an answer may have been lost: the content is unknown now
                delay = min(self._retry_min * 2**ch.failures, self._retry_max)
                message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                level = logging.WARNING if ch.failures == 0 else logging.DEBUG
                log.log(
                    level,
                    "%s: local list update failed (%s); trying again in %.0f s",
                    ch.charger_id,
                    message,
                    delay,
                )
                ch.failures += 1
                ch.last_error = message
                checked = False  # the content is unknown: check again, as on connect
                await asyncio.sleep(delay)

    async def _session(self, ch: _Charger) -> None:
        cid = ch.charger_id
        ch.dirty = False
        if is_v2(ch.ocpp) and not ch.v201:
            ch.caps = caps = ListCapabilities(False, reason=V2_NOT_MANAGED)
            await self._store.set_list_capabilities(cid, caps.to_json())
            self._stand_down(ch, caps)
            return
        caps = await (self._probe201(ch) if ch.v201 else self._probe(ch))
        if not caps.supported:
            self._stand_down(ch, caps)
            return
        answer = await self._ask(ch, "GetLocalListVersion", {})
        reported = v201.reported_version(answer) if ch.v201 else int(answer.get("listVersion", -1))
        if reported < 0:
            caps = ListCapabilities(False, caps.enabled, reason="GetLocalListVersion said -1")
            await self._store.set_list_capabilities(cid, caps.to_json())
            self._stand_down(ch, caps)
            return
        stored = await self._store.list_state(cid)
        desired = self._desired(ch, caps)
        if ch.pushed is not None and ch.version == reported:
            pass  # still holds what this process pushed
        elif reported == stored.version and stored.pushed.get("digest") == digest(desired):
            ch.pushed, ch.version = dict(desired), reported  # pushed before a restart
        else:
            ch.pushed, ch.version = None, max(reported, stored.version or 0)
        await self._keep(ch, caps, desired)

    async def _keep(self, ch: _Charger, caps: ListCapabilities, desired: Rendered | None) -> None:
        """Send ``desired`` (None: a change, computed after ``settle``), then every change made
        meanwhile; returns when the charger is in step and nothing changed since."""
        while True:
            if desired is None:
                await asyncio.sleep(self._settle)  # let the rest of a burst of changes arrive
                ch.dirty = False
                desired = self._desired(ch, caps)
            try:
                await self._sync(ch, caps, desired)
            except _NotSupported:
                caps = ListCapabilities(False, caps.enabled, reason="SendLocalList: NotSupported")
                await self._store.set_list_capabilities(ch.charger_id, caps.to_json())
                self._stand_down(ch, caps)
                return
            ch.failures = 0
            if not ch.dirty:
                ch.set_idle(True)
                return
            desired = None

    def _stand_down(self, ch: _Charger, caps: ListCapabilities) -> None:
        log.info("%s: no local list pushed (%s)", ch.charger_id, caps.reason)
        ch.active = False
        ch.set_idle(True)

    async def _ask(self, ch: _Charger, action: str, payload: JsonDict) -> JsonDict:
        async with asyncio.timeout(self._call_timeout):
            if ch.v201:
                return await self._call(ch.charger_id, action, payload, version=OCPP201)
            return await self._call(ch.charger_id, action, payload)

    async def _probe201(self, ch: _Charger) -> ListCapabilities:
        """A 2.0.1 station's ``LocalAuthListCtrlr``, read with GetVariables."""
        read = v201.read_capabilities(
            await self._ask(ch, "GetVariables", v201.get_variables_request())
        )
        caps = ListCapabilities(
            read.supported,
            read.enabled,
            send_max=read.items_max,
            reason=read.reason,
            bytes_max=read.bytes_max,
        )
        await self._store.set_list_capabilities(ch.charger_id, caps.to_json())
        ch.caps = caps
        return caps

    async def _probe(self, ch: _Charger) -> ListCapabilities:
        answer = await self._ask(ch, "GetConfiguration", {"key": list(PROBED_KEYS)})
        values: dict[str, str] = {}
        for item in answer.get("configurationKey") or []:
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                values[item["key"]] = str(item.get("value") or "")
        profiles_text = values.get("SupportedFeatureProfiles")
        profiles = None
        if profiles_text is not None:
            profiles = {p.strip() for p in profiles_text.split(",")}
        enabled = key_bool(values.get("LocalAuthListEnabled"))
        max_length = key_int(values.get("LocalAuthListMaxLength"))
        send_max = key_int(values.get("SendLocalListMaxLength"))
        if profiles is not None and PROFILE not in profiles:
            caps = ListCapabilities(False, enabled, reason=f"{PROFILE} not in its feature profiles")
        elif enabled is False:
            caps = ListCapabilities(False, False, reason="LocalAuthListEnabled is false")
        elif max_length == 0:
            caps = ListCapabilities(False, enabled, reason="LocalAuthListMaxLength is 0")
        else:
            caps = ListCapabilities(True, enabled, max_length, send_max or None)
        await self._store.set_list_capabilities(ch.charger_id, caps.to_json())
        ch.caps = caps
        return caps

    def _desired(self, ch: _Charger, caps: ListCapabilities) -> Rendered:
        """The charger's list in its format, cut to its size; reports what was left out."""
        fmt = self._format(ch.charger_id)
        entries = self._entries(ch.charger_id)
        if not ch.v201:  # a 2.x token (KeyCode...): a 1.6 charger would take it for a card
            entries = [e for e in entries if not isinstance(e.card, LiteralToken)]
        out: Rendered = {}
        ch.token_types = {}
        clashes: list[str] = []
        unwritable: list[str] = []
        unwritable_refused = 0
        limit = caps.max_length
        taken = 0
        for entry in entries:
            if limit is not None and len(out) >= limit:
                break
            taken += 1
            try:
                tag = render(entry.card, fmt)
            except UnrepresentableError:
                unwritable.append(entry.card.canonical)
                unwritable_refused += not _valid(entry)
                continue
            key = tag.upper()
            if entry.card.is_uid:
                ch.token_types[key] = "ISO14443"
            elif isinstance(entry.card, LiteralToken):
                ch.token_types[key] = entry.card.kind
            info = entry.info.to_ocpp()
            held = out.get(key)
            if held is not None:
                clashes.append(f"{tag} ({entry.card.canonical})")
                if held[1]["status"] == AuthStatus.ACCEPTED and info["status"] != held[1]["status"]:
                    out[key] = (tag, info)  # two cards look alike here: the refusal wins
                continue
            out[key] = (tag, info)
        cut = entries[taken:]
        valid_cut = [e.card.canonical for e in cut if _valid(e)]
        refused_cut = [e.card.canonical for e in cut if not _valid(e)]
        ch.left_out = len(valid_cut) + len(unwritable) - unwritable_refused
        ch.refused_left_out = len(refused_cut) + unwritable_refused
        self._report(
            ch,
            fmt=fmt,
            limit=limit,
            valid=sum(1 for e in entries if _valid(e)),
            valid_cut=valid_cut,
            refused_cut=refused_cut,
            clashes=clashes,
            unwritable=unwritable,
        )
        return out

    def _report(
        self,
        ch: _Charger,
        *,
        fmt: IdTagFormat,
        limit: int | None,
        valid: int,
        valid_cut: list[str],
        refused_cut: list[str],
        clashes: list[str],
        unwritable: list[str],
    ) -> None:
        """Log what was left out once (a warning when valid cards are missing from the list;
        refusals cut after every valid card are only noted)."""
        lines: list[str] = []
        if valid_cut:
            lines.append(
                f"its list holds {limit} entries, so {len(valid_cut)} of {valid} valid card(s) "
                f"did not fit ({some(valid_cut)}); the gateway still decides for them when asked"
            )
        if unwritable:
            lines.append(
                f"{len(unwritable)} card(s) cannot be written as {fmt.value} within 20 "
                f"characters ({some(unwritable)})"
            )
        if clashes:
            lines.append(
                f"{len(clashes)} card(s) look like another card in {fmt.value} and share one "
                f"entry, the more restrictive ({some(clashes)})"
            )
        warn = bool(lines)
        if refused_cut:
            lines.append(
                f"{len(refused_cut)} refused card(s) did not fit after the valid ones in its "
                f"{limit} entries ({some(refused_cut)}); the gateway refuses them when asked"
            )
        text = "; ".join(lines)
        if text and text != ch.reported:
            log.log(logging.WARNING if warn else logging.INFO, "%s: %s", ch.charger_id, text)
        ch.reported = text

    async def _sync(self, ch: _Charger, caps: ListCapabilities, desired: Rendered) -> None:
        ch.last_error = None
        if ch.pushed is not None:
            changes = diff_lists(ch.pushed, desired)
            if not changes:
                return
            if len(changes) < max(len(desired), 1) and await self._differential(ch, caps, changes):
                return
        await self._full(ch, caps, desired)

    async def _send(self, ch: _Charger, full: bool, entries: list[JsonDict]) -> str:
        assert ch.version is not None
        version = ch.version + 1
        if ch.v201:
            payload = v201.send_request(version, full, [self._in_201(ch, e) for e in entries])
        else:
            payload = {
                "listVersion": version,
                "updateType": "Full" if full else "Differential",
                "localAuthorizationList": entries,
            }
        answer = await self._ask(ch, "SendLocalList", payload)
        status = str(answer.get("status"))
        if status == "NotSupported":
            raise _NotSupported
        if status == "Accepted":
            ch.version = version
        return status

    async def _differential(
        self, ch: _Charger, caps: ListCapabilities, changes: list[JsonDict]
    ) -> bool:
        """Send ``changes``; False when the charger refused (a Full must follow)."""
        assert ch.pushed is not None
        for chunk in self._messages(ch, caps, changes):
            status = await self._send(ch, False, chunk)
            if status != "Accepted":
                log.info(
                    "%s answered %s to a differential local list v%d; sending the full list",
                    ch.charger_id,
                    status,
                    (ch.version or 0) + 1,
                )
                ch.pushed = None
                return False
            apply_entries(ch.pushed, chunk)
            await self._record(ch)
        log.info(
            "%s: local list v%s sent (%d change(s), %d entries)",
            ch.charger_id,
            ch.version,
            len(changes),
            len(ch.pushed),
        )
        return True

    async def _full(self, ch: _Charger, caps: ListCapabilities, desired: Rendered) -> None:
        items = [{"idTag": tag, "idTagInfo": info} for tag, info in desired.values()]
        chunks = self._messages(ch, caps, items) or [[]]
        ch.version = ch.version or 0
        ch.pushed = None
        for number, chunk in enumerate(chunks):
            status = await self._send(ch, number == 0, chunk)
            if status != "Accepted":
                log.error(
                    "%s refused its local list (%s to the %s part of %d entries, "
                    "SendLocalListMaxLength %s, LocalAuthListMaxLength %s); it keeps what it "
                    "has until the next change or reconnection",
                    ch.charger_id,
                    status,
                    "first" if number == 0 else f"#{number + 1}",
                    len(items),
                    caps.send_max,
                    caps.max_length,
                )
                ch.last_error = f"SendLocalList answered {status}"
                return
            if number == 0:
                ch.pushed = {}
            assert ch.pushed is not None
            apply_entries(ch.pushed, chunk)
            await self._record(ch)
        log.info(
            "%s: full local list v%s sent (%d entries in %d message(s))",
            ch.charger_id,
            ch.version,
            len(items),
            len(chunks),
        )

    def _in_201(self, ch: _Charger, entry: JsonDict) -> JsonDict:
        tag = entry["idTag"]
        return entry_201(tag, entry.get("idTagInfo"), ch.token_types.get(tag.upper()))

    def _messages(
        self, ch: _Charger, caps: ListCapabilities, items: list[JsonDict]
    ) -> list[list[JsonDict]]:
        """Messages of ``items``: at most ``send_max`` each; for 2.0.1 within ``bytes_max``."""
        if not ch.v201:
            return cut(items, caps.send_max)
        return v201.chunks(
            items,
            caps.send_max,
            caps.bytes_max,
            lambda e: v201.json_size(self._in_201(ch, e)),
        )

    async def _record(self, ch: _Charger) -> None:
        assert ch.version is not None and ch.pushed is not None
        await self._store.set_list_version(
            ch.charger_id,
            ch.version,
            {
                "digest": digest(ch.pushed),
                "format": self._format(ch.charger_id).value,
                "entries": len(ch.pushed),
            },
        )


def _valid(entry: ListEntry) -> bool:
    return entry.info.status is AuthStatus.ACCEPTED
