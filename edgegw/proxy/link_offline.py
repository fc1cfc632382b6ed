"""What a link keeps for the cloud while it is away: the outbox window of queued transaction
messages (sent one at a time, delivered, retried or parked) and the boot and status
notifications replayed when it returns.

The same rules hold for a 2.x charger, in its messages: its TransactionEvents are the outbox's
(stored with ``offline: true``, see :mod:`edgegw.proxy.local201`), its latest
StatusNotification per EVSE and connector is replayed, and its NotifyEvents stand where a 1.6
charger's error statuses stand (every one kept, up to the same bound, with its ``Faulted``
statuses). The outbox window holds only messages of the link's version.
"""

from __future__ import annotations

import logging
from typing import Any, TypeGuard

from edgegw.proxy import frames
from edgegw.proxy.frames import Call, CallError, CallResult
from edgegw.proxy.link_commands import (
    _MAX_REPLAYED_ERRORS,
    OUTBOX_WINDOW,
    TRANSACTION_EVENT,
    Command,
    Delivered,
    DeliveryFailed,
    LoadOutbox,
    Origin,
)
from edgegw.proxy.link_frames import _FrameHandling
from edgegw.proxy.link_state import _Pending
from edgegw.security.loggable import loggable
from edgegw.store.outbox import QueuedMessage

log = logging.getLogger("edgegw.proxy.link")


class _OfflineQueue(_FrameHandling):
    """The outbox window and the replays of a link."""

    def _queued(self, message: QueuedMessage) -> None:
        if message.action == "StartTransaction" and message.transaction_id is not None:
            self._tx_map[message.transaction_id] = None
        if self._outbox_loading or self._outbox_more or len(self._outbox) >= OUTBOX_WINDOW:
            self._outbox_more = True  # on disk; a later load brings it in order
        else:
            self._outbox.append(message)
            self._outbox_last_seq = message.seq

    def _must_queue(self, call: Call) -> bool:
        if not self._is_tx(call):
            return False
        if self.outbox_pending:
            return True
        # A message of a transaction started offline whose start the cloud never accepted.
        local = call.payload.get("transactionId")
        return isinstance(local, int) and local in self._tx_map and self._tx_map[local] is None

    def _own_version(self, message: QueuedMessage) -> bool:
        """A queued message of the link's OCPP version (the only ones its cloud link takes)."""
        return (message.action == TRANSACTION_EVENT) != self._v16

    def _send_outbox_head(self) -> list[Command]:
        out: list[Command] = []
        now = self._clock()
        while self._outbox:
            message = self._outbox[0]
            if self._retry_at > now:
                return out
            payload = message.payload
            local = payload.get("transactionId") if message.action != "StartTransaction" else None
            if isinstance(local, int) and local in self._tx_map:
                cloud = self._tx_map[local]
                if cloud is None:
                    self._outbox.pop(0)
                    reason = self._no_cloud_id.get(local, "its StartTransaction was not accepted")
                    out.extend(self._park(message, reason))
                    continue
                payload = {**payload, "transactionId": cloud}
            call = _outbox_call(f"edgegw-{self._new_id()}", message, payload)
            self._cloud_inflight = _Pending(
                Origin.OUTBOX, call, deadline=now + self._call_timeout, message=message, sent_at=now
            )
            out.append(self._cloud_frame(call.raw))
            if len(self._outbox) <= OUTBOX_WINDOW // 2:
                # Read the next window while the cloud answers this one, not after.
                out.extend(self._load_more())
            return out
        out.extend(self._load_more())
        return out

    def _load_more(self) -> list[Command]:
        if self._outbox_more and not self._outbox_loading:
            self._outbox_loading = True
            return [LoadOutbox(self._outbox_last_seq)]
        return []

    def _outbox_answer_now(
        self, message: QueuedMessage, answer: CallResult | CallError
    ) -> list[Command]:
        if isinstance(answer, CallError):
            reason = f"{answer.code}: {answer.description}".rstrip(": ")
            return self._delivery_failed(message, loggable(reason, 300, quote=False))
        self._take_out(message)
        self._retry_at = 0.0
        self.stats.delivered += 1
        cloud_id: int | None = None
        local = message.transaction_id
        if message.action == "StartTransaction" and local is not None:
            value = answer.payload.get("transactionId")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                cloud_id = value
                self._tx_map[local] = value
                self._to_local[value] = local
            else:
                # Never an id: ConcurrentTx comes with transactionId 0.
                reason = self._no_id_reason(message, answer)
                self._no_cloud_id[local] = reason
                self._parked_tx.add(local)
                log.warning(
                    "%s: %s (local transaction %d); its later messages are parked",
                    self.charger_id,
                    reason,
                    local,
                )
        self._maybe_delivered.discard(message.seq)
        return [Delivered(message, answer, cloud_id)]

    def _no_id_reason(self, message: QueuedMessage, answer: CallResult) -> str:
        info = answer.payload.get("idTagInfo")
        status = info.get("status") if isinstance(info, dict) else None
        if status == "ConcurrentTx" and message.seq in self._maybe_delivered:
            return (
                "the cloud already had this StartTransaction (sent on a connection that closed "
                "before its answer) and answered ConcurrentTx without the transaction id"
            )
        return (
            f"the cloud answered the StartTransaction {loggable(status)} without a transaction id"
        )

    def _take_out(self, message: QueuedMessage) -> None:
        """Remove a finished message from the window (or skip it when it is read from disk)."""
        if self._outbox and self._outbox[0] is message:
            self._outbox.pop(0)
        elif message in self._outbox:
            self._outbox.remove(message)
        else:
            self._done_seqs.add(message.seq)

    def _delivery_failed(self, message: QueuedMessage, error: str) -> list[Command]:
        message.attempts += 1
        if message.attempts >= self._sync.max_attempts:
            self._take_out(message)
            self._retry_at = 0.0
            return self._park(message, f"{error} ({message.attempts} attempts)")
        wait = min(self._sync.retry_interval * message.attempts, self._sync.max_retry_interval)
        self._retry_at = self._clock() + wait
        log.warning(
            "%s: cloud did not take queued %s (%s); retry %d in %.0f s",
            self.charger_id,
            message.action,
            error,
            message.attempts + 1,
            wait,
        )
        return [DeliveryFailed(message, error, parked=False)]

    def _park(self, message: QueuedMessage, reason: str) -> list[Command]:
        self.stats.parked += 1
        if message.action == "StartTransaction" and message.transaction_id is not None:
            self._parked_tx.add(message.transaction_id)
        log.error(
            "%s: queued %s parked: %s; it stays in the outbox for the caretaker",
            self.charger_id,
            message.action,
            reason,
        )
        return [DeliveryFailed(message, reason, parked=True)]

    def _queue_replays(self) -> None:
        """What was answered locally goes to the cloud first, in order, ahead of anything else."""
        replays: list[Call] = []
        if self._replay.boot is not None:
            replays.append(self._replay.boot)
        replays.extend(self._replay.errors)
        replays.extend(self._replay.status[c] for c in sorted(self._replay.status))
        for call in reversed(replays):
            fresh = frames.with_id(call, f"edgegw-{self._new_id()}")
            self._to_cloud.insert(0, _Pending(Origin.REPLAY, fresh))
        self._replay.errors.clear()
        self._replay.status.clear()

    def _remember_for_replay(self, call: Call) -> None:
        if call.action == "BootNotification":
            self._replay.boot = call
        elif call.action == "StatusNotification":
            connector = self._status_key(call)
            if connector is not None:
                self._replay.status[connector] = call
            if self._is_error(call):
                self._replay.errors.append(call)
                del self._replay.errors[:-_MAX_REPLAYED_ERRORS]
        elif call.action == "NotifyEvent" and not self._v16:
            self._replay.errors.append(call)
            del self._replay.errors[:-_MAX_REPLAYED_ERRORS]

    def _is_error(self, call: Call) -> bool:
        """A StatusNotification that reports an error (2.x: the connector is ``Faulted``)."""
        if self._v16:
            return bool(call.payload.get("errorCode", "NoError") != "NoError")
        return bool(call.payload.get("connectorStatus") == "Faulted")

    def _status_key(self, call: Call) -> tuple[int, int] | None:
        """Which connector a StatusNotification is about: 1.6 ``(connectorId, 0)``, 2.x
        ``(evseId, connectorId)``; None when the call does not say."""
        connector: object
        second: object
        if self._v16:
            connector, second = call.payload.get("connectorId"), 0
        else:
            connector, second = call.payload.get("evseId"), call.payload.get("connectorId")
        if not _is_int(connector) or not _is_int(second):
            return None
        return connector, second

    def _forget_replay(self, call: Call) -> None:
        """The cloud answered ``call`` after all: it need not be replayed."""
        if self._replay.boot is call:
            self._replay.boot = None
        elif call.action in ("StatusNotification", "NotifyEvent"):
            connector = self._status_key(call) if call.action == "StatusNotification" else None
            if connector is not None and self._replay.status.get(connector) is call:
                del self._replay.status[connector]
            self._replay.errors = [c for c in self._replay.errors if c is not call]

    def _replay_failed(self, call: Call) -> None:
        """A replayed message did not get through: keep it for the next connection."""
        self._remember_for_replay(call)

    def _replayed(self, call: Call, answer: CallResult | CallError) -> None:
        if isinstance(answer, CallError):
            log.warning(
                "%s: cloud refused replayed %s: %s %s",
                self.charger_id,
                call.action,
                loggable(answer.code),
                loggable(answer.description),
            )
        elif call.action == "BootNotification":
            status = answer.payload.get("status")
            log.info(
                "%s: cloud answered the replayed BootNotification: %s", self.charger_id, status
            )
        boot = self._replay.boot
        if call.action == "BootNotification" and boot is not None and boot.payload == call.payload:
            self._replay.boot = None


def _outbox_call(message_id: str, message: QueuedMessage, payload: dict[str, Any]) -> Call:
    """The call that sends a queued message, its frame built from the stored text when known
    (the same characters encoding ``payload`` gives: the text is compact ASCII JSON with its
    keys sorted, as the payload read from it is): no encoding per replayed message. A payload
    whose transaction id was remapped has that one number replaced in the text, when the text
    has one ``"transactionId":`` key (in JSON text a quote inside a string is escaped, so each
    occurrence is a key); otherwise the payload is encoded."""
    text = message.text
    if text is None or message.action not in _OUTBOX_ACTIONS:
        return frames.make_call(message_id, message.action, payload)
    if payload is not message.payload:
        cloud = payload.get("transactionId")
        if type(cloud) is not int or text.count('"transactionId":') != 1:
            return frames.make_call(message_id, message.action, payload)
        local = message.payload["transactionId"]
        text = text.replace(f'"transactionId":{local}', f'"transactionId":{cloud}', 1)
    return Call(
        message_id, message.action, payload, f'[2,"{message_id}","{message.action}",{text}]'
    )


_OUTBOX_ACTIONS = frozenset(
    {"StartTransaction", "StopTransaction", "MeterValues", TRANSACTION_EVENT}
)
"""The actions the outbox holds (names a frame can carry unescaped)."""


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
