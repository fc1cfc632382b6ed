"""The per-charger relay core: events in, commands out, no I/O.

One :class:`Link` exists per connected charger. It is fed the frames each side sends and the
cloud link's ups and downs, and returns the commands the I/O shell (:mod:`edgegw.proxy.session`)
carries out. All the message-id bookkeeping lives here:

* at most one CALL in flight per direction (towards the cloud and towards the charger); later
  calls wait in a FIFO queue — a real CSMS refuses a second call while one is pending;
* every answer goes back to the side that asked: a charger's answer to a cloud call goes to the
  cloud, an answer to one of the gateway's own calls is handed to the gateway and never upstream;
* gateway calls use ids (``edgegw-…``) and, since only one call is in flight towards the charger,
  an answer is always matched against exactly that call: ids cannot be confused;
* when the cloud cannot answer (not configured, unreachable, or too slow), the charger's call is
  handed to the local responder instead (:mod:`edgegw.proxy.local` decides what it answers);
* a 2.x charger (``ocpp2.0.1``, ``ocpp2.1``) is treated alike: the gateway is its OCPP 2.1
  Local Controller (Part 4 §6.3, Edition 2: one *capable of responding to Charging Station
  requests, that forwards transaction-related requests to the CSMS once the connection is
  restored*), so the charger stays connected when the cloud goes or is slow, is answered
  locally on the same rules as a 1.6 charger, and its TransactionEvents are its transaction
  messages (queued durably, replayed in order with their ``seqNo``, ``offline`` set: see
  :mod:`edgegw.proxy.local201`). This replaces the first 2.x slice, in which a 2.x charger's
  connection mirrored its cloud connection (OCPP 2.0.1 Part 4 §6.3: closed with 1011 ``cloud
  unreachable``);
* when the cloud comes back, the charger's latest locally-answered BootNotification and its
  latest StatusNotification per connector are sent first, so the cloud's view is whole again;
* transaction messages (StartTransaction, StopTransaction, MeterValues of a transaction) the cloud
  cannot take are committed to the charger's durable outbox by the shell before the charger gets
  its answer; while the outbox is not empty, new transaction messages queue behind it. The outbox
  is replayed in order, one CALL in flight, with retries and backoff; a message the cloud keeps
  refusing is parked, never dropped. Local transaction ids are replaced by the cloud's in every
  message the cloud sees, and the cloud's ids by the charger's in every call the charger sees;
* a charger re-sends a transaction message it got no answer for, after it connects again. When
  the first copy was committed to the outbox (the gateway may have died before answering), the
  copy must be answered as before and go no further, even if the outbox has been drained since
  and the cloud is up. So on a new connection each transaction message is first looked up in
  the outbox (:class:`AnswerIfResent`) until one is not found: a charger sends what it missed
  first, in order, so everything after the first new message is new too.

:class:`Link` is cut along those seams, each layer a base class in its own module that adds
behaviour to the one below and no state: :mod:`~edgegw.proxy.link_state` (all the state),
:mod:`~edgegw.proxy.link_frames` (checks, id translation), :mod:`~edgegw.proxy.link_offline`
(outbox window, replays), :mod:`~edgegw.proxy.link_pending` (calls in flight, deadlines, late
answers) and here the events from each side. The commands are in
:mod:`~edgegw.proxy.link_commands`, importable from here too.
"""

from __future__ import annotations

import logging

from edgegw.ocpp.versions import OCPP16, OCPP21, is_v2
from edgegw.proxy import frames, schemas
from edgegw.proxy.frames import Call, CallError, CallResult, FrameError
from edgegw.proxy.hooks import SITE_CHECKED_CALLS
from edgegw.proxy.link_commands import (
    GATEWAY_ANSWERS_CLOUD,
    MAX_QUEUED_TO_CHARGER,
    OUTBOX_WINDOW,
    STALL_FACTOR,
    TRANSACTION_MESSAGES,
    AnswerIfResent,
    AnswerLocally,
    CloseCloud,
    CloudCallForGateway,
    CloudExchanged,
    CloudVerdict,
    Command,
    Delivered,
    DeliveryFailed,
    Exchanged,
    GatewayDone,
    LoadOutbox,
    Origin,
    SiteOverridden,
    SyncParams,
    ToCharger,
    ToCloud,
    is_transaction_message,
)
from edgegw.proxy.link_pending import _PendingCalls
from edgegw.proxy.link_state import LinkStats, _Pending
from edgegw.security.loggable import loggable

log = logging.getLogger(__name__)


class Link(_PendingCalls):
    """Relay state for one charger. Not thread-safe; all calls happen on the event loop."""

    # ------------------------------------------------------------ charger side

    def use_version(self, version: str) -> None:
        """The charger's negotiated OCPP version (its subprotocol); until told, ``ocpp1.6``.

        A 2.x link relays every frame as it is (see :mod:`~edgegw.proxy.link_frames`); a 2.1
        link also relays message types 5 (CALLRESULTERROR) and 6 (SEND), which take no part in
        the one-call-in-flight bookkeeping.
        """
        self.version = version
        self._v16 = not is_v2(version)

    def on_charger_message(self, data: str | bytes) -> list[Command]:
        self.stats.from_charger += 1
        try:
            frame = frames.parse(data)
        except FrameError as exc:
            if isinstance(data, str) and self._relays_untouched(exc):
                return [self._cloud_frame(data)] if self.cloud_up else []
            return self._bad_frame("charger", exc, ToCharger)
        if isinstance(frame, Call):
            return self._charger_call(frame)
        return self._charger_answer(frame)

    def _charger_call(self, call: Call) -> list[Command]:
        problem = self._check_call(call, schemas.CHARGER_ACTIONS, "charger")
        if problem is not None:
            self.stats.rejected += 1
            return [ToCharger(problem.raw)]
        timeout = self._authorize_timeout if call.action == "Authorize" else self._call_timeout
        self._to_cloud.append(_Pending(Origin.CHARGER, call, deadline=self._clock() + timeout))
        return self._pump_cloud()

    def _charger_answer(self, answer: CallResult | CallError) -> list[Command]:
        pending = self._charger_inflight
        if pending is None or pending.call.id != answer.id:
            log.warning(
                "%s: dropped an answer to unknown message id %s",
                self.charger_id,
                loggable(answer.id),
            )
            return []
        self._charger_inflight = None
        out: list[Command] = []
        if pending.origin is Origin.CLOUD:
            if pending.epoch == self._epoch and self.cloud_up:
                out.append(self._cloud_frame(answer.raw))
            else:
                log.info(
                    "%s: answer to cloud call %s %s dropped: that cloud link is gone",
                    self.charger_id,
                    pending.call.action,
                    loggable(answer.id),
                )
            out.append(CloudExchanged(pending.asked or pending.call, answer))
        else:
            out.append(GatewayDone(answer.id, answer))
        out.extend(self._pump_charger())
        return out

    def gateway_call(
        self, action: str, payload: dict[str, object], version: str = OCPP16
    ) -> tuple[str, list[Command]]:
        """Queue one of the gateway's own calls to the charger; returns its message id.

        ``version`` is the OCPP version the call is written in (its action and payload; most
        of the gateway's calls are 1.6 ones): it goes only over a link of that version. On a
        link of another version the caller is told at once (:class:`GatewayDone` without an
        answer) and nothing is sent."""
        call = frames.make_call(f"edgegw-{self._new_id()}", action, dict(payload))
        if version != self.version:
            reason = f"charger speaks {self.version}: {loggable(action, quote=False)} not sent"
            log.warning("%s: %s (the call is written in %s)", self.charger_id, reason, version)
            return call.id, [GatewayDone(call.id, None, reason)]
        self._to_charger.append(_Pending(Origin.GATEWAY, call))
        return call.id, self._pump_charger()

    def charger_closed(self) -> list[Command]:
        """The charger's connection ended: nobody will answer what is queued for it."""
        self._charger_gone = True
        out: list[Command] = []
        pending = list(self._to_charger)
        if self._charger_inflight is not None:
            pending.insert(0, self._charger_inflight)
        self._to_charger.clear()
        self._charger_inflight = None
        for item in pending:
            if item.origin is Origin.CLOUD:
                if self.cloud_up and item.epoch == self._epoch:
                    error = frames.make_error(
                        item.call.id, "GenericError", "charge point is not connected"
                    )
                    out.append(self._cloud_frame(error.raw))
            else:
                out.append(GatewayDone(item.call.id, None, "charger disconnected"))
        # Its calls not yet sent go no further: nobody waits for their answers, and a charger
        # re-sends the transaction messages it got no answer for. A call the cloud is working
        # on stays outstanding until it answers (its answer completes it) or the link closes.
        kept: list[_Pending] = []
        dropped = 0
        for item in self._to_cloud:
            if item.origin is Origin.CHARGER and item.late is None:
                dropped += 1
            else:
                kept.append(item)
        self._to_cloud = kept
        if dropped:
            log.info(
                "%s: %d call(s) of the charger not sent: it has gone", self.charger_id, dropped
            )
        for busy in (self._cloud_inflight, self._local_inflight):
            if busy is not None and busy.origin is Origin.CHARGER:
                busy.orphaned = True
        return out

    def charger_attached(self) -> list[Command]:
        """A new connection of the charger takes over this link (its cloud side stayed)."""
        self._charger_gone = False
        self._may_resend = self._check_resent
        return self._pump_cloud()

    # ------------------------------------------------------------ cloud side

    def on_cloud_message(self, data: str | bytes) -> list[Command]:
        self.stats.from_cloud += 1
        try:
            frame = frames.parse(data)
        except FrameError as exc:
            if isinstance(data, str) and self._relays_untouched(exc):
                return [] if self._charger_gone else [ToCharger(data)]
            return self._bad_frame("cloud", exc, self._cloud_frame)
        if isinstance(frame, Call):
            problem = self._check_call(frame, schemas.CSMS_ACTIONS, "cloud")
            if problem is not None:
                self.stats.rejected += 1
                return [self._cloud_frame(problem.raw)]
            if (
                self.version != OCPP21  # 1.6 and 2.0.1: one mirror (auth.cloudlist201)
                and self._answer_local_list
                and frame.action in GATEWAY_ANSWERS_CLOUD
            ):
                return [CloudCallForGateway(frame)]
            if self._charger_gone:
                error = frames.make_error(frame.id, "GenericError", "charge point is not connected")
                return [self._cloud_frame(error.raw)]
            if self._v16 and self._site_call is not None and frame.action in SITE_CHECKED_CALLS:
                refused = self._site_call(frame.action, frame.payload)
                if refused is not None:  # answered by the site, never relayed
                    answer = frames.make_result(frame.id, refused.payload)
                    return [self._cloud_frame(answer.raw), SiteOverridden(frame.action, refused)]
            if self.queued_to_charger >= MAX_QUEUED_TO_CHARGER:
                self.stats.rejected += 1
                log.warning(
                    "%s: refused a cloud call: %d calls already wait for the charger",
                    self.charger_id,
                    self.queued_to_charger,
                )
                error = frames.make_error(
                    frame.id, "GenericError", "too many calls queued for this charge point"
                )
                return [self._cloud_frame(error.raw)]
            asked, call = self._for_charger(frame)
            self._to_charger.append(_Pending(Origin.CLOUD, call, epoch=self._epoch, asked=asked))
            return self._pump_charger()
        return self._cloud_answer(frame)

    def _relays_untouched(self, exc: FrameError) -> bool:
        """An OCPP 2.1 frame of type 5 or 6 on a 2.1 link (text: parse refuses binary)."""
        return exc.message_type is not None and self.version == OCPP21

    def cloud_unreachable(self) -> list[Command]:
        """A connection attempt failed; if it was the first, stop holding charger calls."""
        if not self.cloud_connecting:
            return []
        self.cloud_connecting = False
        return self._pump_cloud()

    def cloud_connected(self) -> list[Command]:
        self.cloud_connecting = False
        self.cloud_up = True
        self._epoch += 1
        self._retry_at = 0.0  # a new connection: queued messages go again at once
        self._queue_replays()
        return self._pump_cloud()

    def cloud_disconnected(self) -> list[Command]:
        self.cloud_up = False
        self._epoch += 1
        # Cloud calls still queued for the charger came over the lost link: drop them.
        self._to_charger = [p for p in self._to_charger if p.origin is not Origin.CLOUD]
        out: list[Command] = []
        pending = self._cloud_inflight
        self._cloud_inflight = None
        if pending is not None:
            # Its fate is unknown: the cloud may have taken it. What is re-sent for it later is
            # the one at-least-once window at the cloud boundary.
            pending.maybe_sent = True
            if pending.origin is Origin.CHARGER:
                if pending.message is not None:  # overdue, committed: replayed from the outbox
                    self._maybe_delivered.add(pending.message.seq)
                elif pending is self._local_inflight:
                    pass  # its local answer is being made
                elif not pending.overdue or pending.local_wanted:  # not answered yet
                    pending.local_wanted = False
                    self._to_cloud.insert(0, pending)
                # else: answered locally at its deadline (a status or boot kept for replay)
            elif pending.origin is Origin.REPLAY:
                self._replay_failed(pending.call)
            elif pending.message is not None:
                # OUTBOX: still at the head of the outbox; it goes again next time.
                self._maybe_delivered.add(pending.message.seq)
        # Replays not yet sent are kept for the next connection, but not duplicated.
        kept: list[_Pending] = []
        for item in self._to_cloud:
            if item.origin is Origin.REPLAY:
                self._replay_failed(item.call)
            else:
                kept.append(item)
        self._to_cloud = kept
        out.extend(self._pump_cloud())
        return out


__all__ = [
    "GATEWAY_ANSWERS_CLOUD",
    "MAX_QUEUED_TO_CHARGER",
    "OUTBOX_WINDOW",
    "STALL_FACTOR",
    "TRANSACTION_MESSAGES",
    "AnswerIfResent",
    "AnswerLocally",
    "CloseCloud",
    "CloudCallForGateway",
    "CloudExchanged",
    "CloudVerdict",
    "Command",
    "Delivered",
    "DeliveryFailed",
    "Exchanged",
    "GatewayDone",
    "Link",
    "LinkStats",
    "LoadOutbox",
    "Origin",
    "SiteOverridden",
    "SyncParams",
    "ToCharger",
    "ToCloud",
    "is_transaction_message",
]
