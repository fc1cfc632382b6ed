"""What the gateway answers itself when the cloud cannot: the "who answers what" table.

With a cloud configured, the gateway answers a charger call itself only while the cloud is
unreachable or too slow. Without one (a standalone site) it is the charger's CSMS for everything.

| action                                   | standalone            | cloud unreachable            |
|------------------------------------------|-----------------------|------------------------------|
| BootNotification                         | Accepted              | Accepted (replayed later)    |
| Heartbeat                                | gateway clock         | gateway clock                |
| StatusNotification, *StatusNotification, | acknowledged          | acknowledged (latest status  |
| SecurityEventNotification                |                       | and errors replayed later)   |
| Authorize                                | card authority        | card authority               |
| StartTransaction                         | recorded, gateway id  | outbox, local id (durable)   |
| StopTransaction, MeterValues of a tx     | recorded              | outbox (durable)             |
| MeterValues without a transaction        | acknowledged          | acknowledged, not replayed   |
| DataTransfer                             | UnknownVendorId       | UnknownVendorId              |
| SignCertificate                          | Rejected              | Rejected                     |

The card authority (``edgegw.auth.authorizer``) decides from the local list, the cache of the
cloud's answers and the site policy. A session the cloud started (RemoteStartTransaction just
before the link dropped) is never refused by the offline policy.

A 2.x charger's calls (``v2``) are answered by :class:`~edgegw.proxy.local201.LocalResponder201`
on the same rules, in 2.0.1 terms (its table is there); its TransactionEvents are queued in the
same outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from edgegw.proxy import frames
from edgegw.proxy.frames import Call, CallError, CallResult
from edgegw.proxy.hooks import SiteAuthority
from edgegw.proxy.link_commands import TRANSACTION_EVENT, is_transaction_message
from edgegw.proxy.local201 import LocalResponder201
from edgegw.proxy.rules import QueuedRecord, RemoteStarts, queued_record
from edgegw.store.outbox import QueuedMessage
from edgegw.store.store import Store

log = logging.getLogger(__name__)

_ACKNOWLEDGED = frozenset(
    {
        "StatusNotification",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "LogStatusNotification",
        "SignedFirmwareStatusNotification",
        "SecurityEventNotification",
        "MeterValues",
    }
)


def iso_now(clock: Callable[[], float]) -> str:
    return (
        datetime.fromtimestamp(clock(), UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class CardAuthority(SiteAuthority, Protocol):
    """Decides cards on the gateway's own authority and learns from the cloud's answers.

    As a :class:`~edgegw.proxy.hooks.SiteAuthority` it also overrules the cloud's Accepted for
    the cards the site's records refuse, while the cloud answers.
    """

    def id_tag_info(self, charger_id: str, id_tag: str, *, literal: bool = False) -> dict[str, Any]:
        """The OCPP idTagInfo for ``id_tag`` presented at ``charger_id``, decided locally
        (``literal``: a token that is no card UID, matched on its text only)."""

    def learn(
        self, charger_id: str, id_tag: str, id_tag_info: dict[str, Any], *, literal: bool = False
    ) -> Awaitable[None] | None:
        """Remember what the cloud answered for ``id_tag`` presented at ``charger_id``, at once
        (the next decision, at any charger, reads it); return the disk write still to do, to
        await later in the order of the answers, or None."""

    async def answer_cloud(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Answer SendLocalList / GetLocalListVersion from the cloud."""

    def free_charging(self, charger_id: str) -> bool:
        """Whether a caretaker set ``charger_id`` to accept any card."""


class LocalResponder:
    """Answers charger calls on the gateway's own authority; queues transaction messages."""

    def __init__(
        self,
        store: Store,
        *,
        standalone: bool,
        heartbeat_interval: int,
        cards: CardAuthority,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._standalone = standalone
        self._heartbeat_interval = heartbeat_interval
        self.cards = cards
        self._clock = clock
        self._remote_starts = RemoteStarts()
        self._relayed: dict[str, tuple[str, str]] = {}
        """Per charger, its last transaction message the cloud answered through the relay and
        the answer the charger was sent, as their frames (:meth:`relayed`): the texts the
        relay had anyway, not their parsed payloads (a few hundred bytes per charger)."""
        self._handlers: dict[str, Callable[[str, Call], Awaitable[dict[str, Any]]]] = {
            "BootNotification": self._boot,
            "Heartbeat": self._heartbeat,
            "Authorize": self._authorize,
            "StartTransaction": self._start,
            "StopTransaction": self._stop,
            "DataTransfer": self._data_transfer,
            "SignCertificate": self._rejected,
        }
        self._v2 = LocalResponder201(
            store,
            heartbeat_interval=heartbeat_interval,
            decide=cards.id_tag_info,
            decide_start=self._start_info,
            now=lambda: iso_now(self._clock),
            decide_literal=lambda charger, token: cards.id_tag_info(charger, token, literal=True),
            decide_start_literal=lambda charger, token: self._start_info(
                charger, token, literal=True
            ),
        )

    def cloud_started(self, charger_id: str, id_tag: str) -> None:
        """The cloud remote-started a session for ``id_tag``: never refuse it offline."""
        self._remote_starts.note(charger_id, id_tag, self._clock())

    async def answer(
        self, charger_id: str, call: Call, *, v2: bool = False
    ) -> CallResult | CallError:
        """The gateway's own answer to ``call`` (``v2``: the charger speaks OCPP 2.x)."""
        if v2:
            return self._answer_v2(charger_id, call)
        handler = self._handlers.get(call.action)
        if handler is None:
            handler = self._empty if call.action in _ACKNOWLEDGED else None
        if handler is None:
            return frames.make_error(call.id, "NotSupported", f"{call.action} is not handled")
        try:
            payload = await handler(charger_id, call)
        except Exception:
            log.exception("%s: answering %s locally failed", charger_id, call.action)
            return frames.make_error(call.id, "InternalError", "gateway failed to process")
        return frames.make_result(call.id, payload)

    def _answer_v2(self, charger_id: str, call: Call) -> CallResult | CallError:
        try:
            payload = self._v2.payload(charger_id, call)
        except Exception:
            log.exception("%s: answering %s locally failed", charger_id, call.action)
            return frames.make_error(call.id, "InternalError", "gateway failed to process")
        if payload is None:
            return frames.make_error(call.id, "NotSupported", f"{call.action} is not handled")
        return frames.make_result(call.id, payload)

    async def queue(
        self, charger_id: str, call: Call, *, v2: bool = False
    ) -> tuple[CallResult | CallError, QueuedMessage | None]:
        """Commit a transaction message to the outbox, then answer it (the durability rule).

        If the commit fails the charger gets a CALLERROR and keeps the message itself.
        ``v2``: a 2.x TransactionEvent (:meth:`LocalResponder201.queue`).
        """
        if v2:
            try:
                answer, queued = await self._v2.queue(charger_id, call)
            except Exception:
                log.exception("%s: could not queue %s", charger_id, call.action)
                error = frames.make_error(
                    call.id, "InternalError", "gateway could not store the message; retry"
                )
                return error, None
            return frames.make_result(call.id, answer), queued
        outbox = self._store.outbox
        store = self._store
        try:
            local_id: int | None = None
            if call.action == "StartTransaction":
                message, local_id = await outbox.enqueue_start(charger_id, call.payload)
                payload: dict[str, Any] = {
                    "transactionId": local_id,
                    "idTagInfo": self._start_info(charger_id, str(call.payload["idTag"])),
                }
            else:
                message = await outbox.enqueue(charger_id, call.action, call.payload)
                payload = {}
            record = queued_record(call.action, first_time=message is not None)
            if record is QueuedRecord.START_IF_MISSING:
                assert local_id is not None
                if await store.transaction_recorded(charger_id, local_id):
                    record = QueuedRecord.NOTHING
            if record in (QueuedRecord.START, QueuedRecord.START_IF_MISSING):
                assert local_id is not None
                await store.transaction_started(
                    charger_id, call.payload, local_id, origin="gateway"
                )
            elif record is QueuedRecord.STOP:
                await self._stopped(charger_id, call)
            elif record is QueuedRecord.STOP_AGAIN:
                await store.transaction_stopped(charger_id, call.payload)
        except Exception:
            log.exception("%s: could not queue %s", charger_id, call.action)
            error = frames.make_error(
                call.id, "InternalError", "gateway could not store the message; retry"
            )
            return error, None
        return frames.make_result(call.id, payload), message

    def relayed(self, charger_id: str, call: Call, answer: CallResult | CallError) -> None:
        """The charger was sent the cloud's ``answer`` to ``call`` (relayed, or late).

        The last transaction message of each charger is kept with that answer, in memory: if
        the charger's connection died as the answer went (the gateway hears of it after, or
        never), the charger sends the message again on its next connection, and
        :meth:`answer_if_resent` answers the copy as the cloud did instead of relaying it.
        """
        if isinstance(answer, CallResult) and (
            call.action == TRANSACTION_EVENT or is_transaction_message(call)
        ):
            self._relayed[charger_id] = (call.raw, answer.raw)

    def _relayed_answer(self, charger_id: str, call: Call) -> dict[str, Any] | None:
        """The cloud's answer to ``call`` if it is a copy of the charger's last relayed one."""
        kept = self._relayed.get(charger_id)
        if kept is None:
            return None
        before, answer = frames.parse(kept[0]), frames.parse(kept[1])
        if not isinstance(before, Call) or not isinstance(answer, CallResult):
            return None
        if (before.action, before.payload) != (call.action, call.payload):
            return None
        return answer.payload

    async def answer_if_resent(
        self, charger_id: str, call: Call, *, v2: bool = False
    ) -> CallResult | CallError | None:
        """Answer a copy of a message already in the outbox as before; None if it is new.

        A transaction message the cloud already answered through the relay is a copy too: the
        gateway passed the cloud's answer on just as the charger's connection died (its close
        arrived after the answer, or never), so the charger sends it again on its next
        connection. It is answered as the cloud answered it (:meth:`relayed`) and never reaches
        the cloud twice. (Nothing here waits for the records: a new start is answered while
        they wait for the database.)
        """
        try:
            relayed_answer = self._relayed_answer(charger_id, call)
        except Exception:
            log.exception("%s: could not compare %s with its last one", charger_id, call.action)
            relayed_answer = None
        if relayed_answer is not None:
            log.info(
                "%s: %s sent again after the cloud's answer was lost on the way; answered as the "
                "cloud answered it",
                charger_id,
                call.action,
            )
            return frames.make_result(call.id, relayed_answer)
        try:
            if v2:
                known = await self._v2.contains(charger_id, call)
            else:
                known = await self._store.outbox.contains(charger_id, call.action, call.payload)
        except Exception:
            # Relaying it is the safe side: at worst the cloud sees a copy, nothing is lost.
            log.exception("%s: could not look %s up in the outbox", charger_id, call.action)
            return None
        if not known:
            return None
        answer, _ = await self.queue(charger_id, call, v2=v2)  # the outbox recognises the copy
        return answer

    def _start_info(self, charger_id: str, id_tag: str, *, literal: bool = False) -> dict[str, Any]:
        if self._remote_starts.honoured(charger_id, id_tag, self._clock()):
            # The cloud's word, as if it had answered: unless the site refuses the card since.
            info: dict[str, Any] = {"status": "Accepted"}
            refused = self.cards.override_answer(
                charger_id, "StartTransaction", {"idTag": id_tag}, {"idTagInfo": info}
            )
            return info if refused is None else dict(refused.payload["idTagInfo"])
        return self.cards.id_tag_info(charger_id, id_tag, literal=literal)

    async def _boot(self, charger_id: str, call: Call) -> dict[str, Any]:
        return {
            "status": "Accepted",
            "currentTime": iso_now(self._clock),
            "interval": self._heartbeat_interval,
        }

    async def _heartbeat(self, charger_id: str, call: Call) -> dict[str, Any]:
        return {"currentTime": iso_now(self._clock)}

    async def _authorize(self, charger_id: str, call: Call) -> dict[str, Any]:
        return {"idTagInfo": self.cards.id_tag_info(charger_id, str(call.payload["idTag"]))}

    async def _start(self, charger_id: str, call: Call) -> dict[str, Any]:
        # Standalone: the gateway is the CSMS and numbers transactions per charger. A copy of
        # a start it answered before (the answer was lost) gets the same id, and no new row.
        transaction_id = await self._store.started_before(charger_id, call.payload)
        if transaction_id is None:
            transaction_id = await self._store.next_counter(f"transaction:{charger_id}")
            await self._store.transaction_started(
                charger_id, call.payload, transaction_id, origin="gateway"
            )
        else:
            log.info("%s: StartTransaction sent again; same transaction id", charger_id)
        return {
            "transactionId": transaction_id,
            "idTagInfo": self._start_info(charger_id, str(call.payload["idTag"])),
        }

    async def _stop(self, charger_id: str, call: Call) -> dict[str, Any]:
        await self._stopped(charger_id, call)
        return {}

    async def _stopped(self, charger_id: str, call: Call) -> None:
        if not await self._store.transaction_stopped(charger_id, call.payload):
            # Acknowledge anyway: a charger re-sends an unacknowledged stop forever.
            log.warning(
                "%s: StopTransaction for unknown transaction %s acknowledged",
                charger_id,
                call.payload.get("transactionId"),
            )

    async def _empty(self, charger_id: str, call: Call) -> dict[str, Any]:
        return {}

    async def _data_transfer(self, charger_id: str, call: Call) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}

    async def _rejected(self, charger_id: str, call: Call) -> dict[str, Any]:
        return {"status": "Rejected"}
