"""Two parts of a charger session's bookkeeping, out of :mod:`edgegw.proxy.session`:

* :class:`Sessions201` — a 2.x charger's sessions written to the records
  (:mod:`edgegw.store.sessions201`) through the store's bookkeeper, in order after every record
  handed in before; it keeps which running transactions have their meter start and card
  recorded, so later events write only what a record may lack. On a cloudless site the
  gateway's answer to a TransactionEvent waits for its records
  (:meth:`Sessions201.answered_standalone`); elsewhere nobody waits (a relayed event is the
  cloud's to keep, a queued one is in the outbox and recorded again if missing on delivery).
* :class:`LateRefusals` — StopTransactionOnInvalidId: the cloud refused, in its answer to a
  replayed message, the card of a session the gateway answered while it was away (1.6: the
  StartTransaction's ``idTagInfo``; 2.x: a TransactionEvent's ``idTokenInfo``). A session still
  running is stopped (1.6: RemoteStopTransaction; 2.x: RequestStopTransaction in 2.0.1 form)
  when the site's ``auth.stop_transaction_on_invalid_id`` says so and free charging is off.
  For 2.x too the site's setting decides, not the station's ``TxCtrlr.StopTxOnInvalidId``
  (which acts only on answers the station itself receives: the replayed answer reaches the
  gateway, never the station).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from edgegw.ocpp.versions import OCPP16, OCPP201
from edgegw.proxy import frames
from edgegw.proxy.frames import Call, CallError, CallResult
from edgegw.proxy.rules import (
    InvalidIdAction,
    OfflineStartRefused,
    OfflineTokenRefused,
    Record201,
    RecordMeter201,
    RecordStart201,
    invalid_id_action,
    transaction_records,
)
from edgegw.security.loggable import loggable
from edgegw.store.bookkeeper import Job
from edgegw.store.sessions201 import (
    open_201,
    write_card,
    write_meter_start,
    write_start,
    write_stop,
)
from edgegw.store.store import Store
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

KNOWN_TRANSACTIONS = 64
"""Transactions of one charger whose meter start (card) is known recorded, kept while they run
(oldest dropped: one more write, which changes nothing, if it comes again)."""


class Sessions201:
    """A 2.x charger's sessions, written through the store's bookkeeper."""

    def __init__(self, charger_id: str, store: Store, clock: Callable[[], float]) -> None:
        self._charger_id = charger_id
        self._store = store
        self._clock = clock
        self._meter_known: dict[str, None] = {}
        """Transactions whose meter start is recorded (their Started had one, or a reading was
        written as it), oldest first. Any other one's next reading is written as its meter
        start where the record has none: a transaction started before this connection (the
        station reconnected, the gateway restarted) is asked once, not forgotten."""
        self._card_known: dict[str, None] = {}
        """Transactions whose card is recorded, the same way (a token named after Started)."""

    def carry_out(self, record: Record201) -> None:
        """Hand the record's write to the bookkeeper (a later event's reading or token only
        where the record may lack it: :meth:`_later`)."""
        write = self._write(record)
        if write is not None:
            self._store.bookkeeping.post(*write)

    async def answered_standalone(
        self, call: Call, answer: CallResult | CallError
    ) -> CallResult | CallError:
        """A cloudless site's answer to a 2.x call: a TransactionEvent's records are committed
        before the answer goes out (the durability rule, as 1.6 standalone sessions are), in
        the bookkeeper's order after every record handed in before. A write that fails turns
        the answer into a CALLERROR: the station keeps the event and sends it again (every
        write is idempotent). Any other call's answer is returned as it is."""
        if call.action != "TransactionEvent" or not isinstance(answer, CallResult):
            return answer
        try:
            for record in transaction_records(call.payload, queued=False):
                write = self._write(record)
                if write is not None:
                    await self._store.bookkeeping.run(write[0])
        except Exception:
            log.exception("%s: could not record TransactionEvent", self._charger_id)
            return frames.make_error(
                call.id, "InternalError", "gateway could not store the message; retry"
            )
        return answer

    def _write(self, record: Record201) -> tuple[Job, str] | None:
        """The record's write and what to call it; None when there is nothing to write."""
        store, charger_id, now = self._store, self._charger_id, self._clock()
        if isinstance(record, RecordStart201):
            start = record.start
            _known(self._meter_known, start.tx_ref, start.meter_start_wh is not None)
            _known(self._card_known, start.tx_ref, bool(start.id_tag))
            return lambda: write_start(store, charger_id, start, now), "a 2.x session's start"
        if isinstance(record, RecordMeter201):
            return self._later(record)
        stop = record.stop
        _known(self._meter_known, stop.tx_ref, False)
        _known(self._card_known, stop.tx_ref, False)
        return lambda: write_stop(store, charger_id, stop, now), "a 2.x session's stop"

    def _later(self, record: RecordMeter201) -> tuple[Job, str] | None:
        """A later event's reading and token, written where the record may lack them (a write
        that finds them there changes nothing); known once written."""
        store, charger_id = self._store, self._charger_id
        tx_ref, wh, id_tag = record.tx_ref, record.energy_wh, record.id_tag
        meter = wh if tx_ref not in self._meter_known else None
        card = id_tag if tx_ref not in self._card_known else ""
        if meter is None and not card:
            return None

        async def write() -> None:
            if meter is not None:
                await write_meter_start(store, charger_id, tx_ref, meter)
                _known(self._meter_known, tx_ref, True)
            if card:
                await write_card(store, charger_id, tx_ref, card)
                _known(self._card_known, tx_ref, True)

        return write, "a 2.x session's meter start or card"

    def delivered(self, action: str, payload: dict[str, Any]) -> None:
        """A TransactionEvent the gateway answered and queued reached the cloud: its session
        is recorded if it is missing (the gateway stopped between the answer and the record).
        Writes that find it recorded change nothing."""
        if action != "TransactionEvent":
            return
        for record in transaction_records(payload, queued=True):
            if not isinstance(record, RecordMeter201):
                self.carry_out(record)
            elif record.id_tag:  # its card, not its reading (a later one may be the start)
                self.carry_out(RecordMeter201(record.tx_ref, None, record.id_tag))


def _known(known: dict[str, None], tx_ref: str, recorded: bool) -> None:
    """Note whether ``tx_ref``'s fact is recorded; at most :data:`KNOWN_TRANSACTIONS`."""
    if not recorded:
        known.pop(tx_ref, None)
        return
    known[tx_ref] = None
    while len(known) > KNOWN_TRANSACTIONS:
        del known[next(iter(known))]


class Caller(Protocol):
    def __call__(
        self, action: str, payload: dict[str, Any], timeout: float = ..., version: str = ...
    ) -> Awaitable[dict[str, Any]]: ...


class LateRefusals:
    """StopTransactionOnInvalidId for sessions answered offline (see the module)."""

    def __init__(
        self,
        charger_id: str,
        *,
        store: Store,
        stop_on_invalid_id: bool,
        free_charging: Callable[[], bool],
        call: Caller,
        tasks: TaskOwner,
        post_event: Callable[[str, str, dict[str, Any]], None],
        failures: tuple[type[BaseException], ...],
    ) -> None:
        self._charger_id = charger_id
        self._store = store
        self._stop_on_invalid_id = stop_on_invalid_id
        self._free_charging = free_charging
        self._call = call
        self._tasks = tasks
        self._post_event = post_event
        self._failures: tuple[type[BaseException], ...] = (*failures, TimeoutError)

    async def start_refused(self, refused: OfflineStartRefused) -> None:
        """The cloud refused the card of a 1.6 session started offline.

        The gateway may have refused it too (the charger then usually ended the session at
        once): the wording says what the cloud answered, not that the gateway had accepted.
        Whether the session still runs is read after every record handed in before; the stop
        is a call of its own task.
        """
        local_id, id_tag, status = refused.transaction_id, refused.id_tag, refused.status
        running = await self._store.transaction_open(self._charger_id, local_id)
        act = self._decide(running, status, id_tag, f"transaction {local_id} started offline")
        self._post_event(
            "auth.refused_after_offline_start",
            f"cloud answered {status} for card {id_tag} (transaction {local_id}); {act.outcome}",
            {"transaction_id": local_id, "id_tag": id_tag, "status": status},
        )
        if act.stop:
            self._tasks.spawn(
                self._stop("RemoteStopTransaction", {"transactionId": local_id}, OCPP16, local_id),
                f"invalid-id-stop:{local_id}",
            )

    async def token_refused(self, refused: OfflineTokenRefused) -> None:
        """The cloud refused the idToken of a 2.x transaction answered offline: the same,
        with RequestStopTransaction (2.0.1) for the charger's own transaction id."""
        tx_ref, token, status = refused.tx_ref, refused.id_token, refused.status
        running = await open_201(self._store, self._charger_id, tx_ref)
        act = self._decide(
            running, status, token, f"transaction {loggable(tx_ref)} answered offline"
        )
        self._post_event(
            "auth.refused_after_offline_start",
            f"cloud answered {status} for token {token} (transaction {tx_ref}); {act.outcome}",
            {"transaction_id": tx_ref, "id_tag": token, "status": status},
        )
        if act.stop:
            self._tasks.spawn(
                self._stop("RequestStopTransaction", {"transactionId": tx_ref}, OCPP201, tx_ref),
                f"invalid-id-stop:{tx_ref}",
            )

    def _decide(self, running: bool, status: Any, card: str, what: str) -> InvalidIdAction:
        action = invalid_id_action(
            running=running,
            stop_on_invalid_id=self._stop_on_invalid_id,
            free=self._free_charging(),
        )
        log.warning(
            "%s: the cloud answered %s for card %s of %s; %s",
            self._charger_id,
            loggable(status),
            loggable(card),
            what,
            action.outcome,
        )
        return action

    async def _stop(
        self, action: str, payload: dict[str, Any], version: str, transaction: object
    ) -> None:
        try:
            answer = await self._call(action, payload, version=version)
        except self._failures as exc:
            log.warning("%s: could not stop transaction %s: %s", self._charger_id, transaction, exc)
            return
        log.info("%s: %s %s: %s", self._charger_id, action, transaction, answer.get("status"))
