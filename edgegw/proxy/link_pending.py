"""Pending-call bookkeeping of the relay core: the one CALL in flight towards the cloud, its
deadline and local answer, late answers that complete it, overdue and stalled calls, and the
pump that sends the next one.
"""

from __future__ import annotations

import logging

from edgegw.proxy.frames import CallError, CallResult
from edgegw.proxy.link_commands import (
    AnswerIfResent,
    AnswerLocally,
    CloseCloud,
    CloudVerdict,
    Command,
    Exchanged,
    GatewayDone,
    Origin,
    ToCharger,
)
from edgegw.proxy.link_offline import _OfflineQueue
from edgegw.proxy.link_state import _Pending
from edgegw.security.loggable import loggable
from edgegw.store.outbox import QueuedMessage

log = logging.getLogger("edgegw.proxy.link")


class _PendingCalls(_OfflineQueue):
    """The calls a link has in flight, their deadlines and their answers."""

    def _cloud_answer(self, answer: CallResult | CallError) -> list[Command]:
        pending = self._cloud_inflight
        if pending is None or pending.call.id != answer.id:
            log.warning(
                "%s: dropped a cloud answer to unknown message id %s",
                self.charger_id,
                loggable(answer.id),
            )
            return []
        self._cloud_inflight = None
        out: list[Command] = []
        if pending.overdue:
            if pending.origin is Origin.CHARGER:
                self._forget_replay(pending.call)  # the cloud has this one now
            # The cloud answers again: what was answered locally meanwhile goes to it first.
            self._queue_replays()
        if pending.origin is Origin.CHARGER:
            if pending.orphaned or pending.overdue:
                return self._late_answer(pending, answer)
            answer = self._site_word(pending.call, answer, out)
            out.append(ToCharger(answer.raw))
            out.append(Exchanged(pending.call, answer, "cloud"))
        elif pending.origin is Origin.OUTBOX:
            message = pending.message
            assert message is not None
            done = self._outbox_answer(message, answer)
            if isinstance(answer, CallResult) and message.action != "StartTransaction":
                # The next message goes out before this one is marked delivered on disk, so
                # the replay never waits for a commit between two messages. A crash between the
                # two re-sends this one, as a crash just after the cloud's answer always could.
                # A start is committed first: its cloud id must be on disk before any message
                # carries it.
                return [*self._pump_cloud(), *done]
            out.extend(done)
        else:
            self._replayed(pending.call, answer)
        out.extend(self._pump_cloud())
        return out

    def _late_answer(self, pending: _Pending, answer: CallResult | CallError) -> list[Command]:
        """The cloud answered a charger call the charger has no use for any more.

        Either the charger was answered locally at the deadline (``overdue``) or it left before
        the answer came (``orphaned``). A transaction message is then completed like a queued
        one: committed to the outbox with the answer the charger had (or would have) from the
        gateway, and marked delivered with the cloud's answer, so a copy the charger sends again
        is recognised and never reaches the cloud twice.
        """
        call = pending.call
        if pending.overdue:
            log.info(
                "%s: the cloud answered %s %s after the gateway had answered the charger",
                self.charger_id,
                loggable(call.action),
                loggable(call.id),
            )
        if not (self.cloud_configured and self._is_tx(call)):
            # The cloud's verdict on a card is worth keeping for the next offline decision.
            learnt: list[Command] = (
                [CloudVerdict(call, answer)]
                if call.action == "Authorize" and isinstance(answer, CallResult)
                else []
            )
            if pending is self._local_inflight:
                pending.late = answer  # its local answer is being made: not to be replayed
                return [*learnt, *self._pump_cloud()]
            if pending.overdue:
                self._forget_replay(call)  # the cloud has it: nothing to replay
                return [*learnt, *self._pump_cloud()]
            return [Exchanged(call, answer, "cloud"), *self._pump_cloud()]
        if pending.message is not None:  # committed to the outbox at the deadline
            return [*self._complete_queued(pending.message, answer), *self._pump_cloud()]
        pending.late = answer
        pending.local_wanted = False
        if pending.orphaned:
            # The charger never had this answer: what it sends next may be a copy of it.
            self._may_resend = self._check_resent
        if pending is not self._local_inflight:
            # Not handed to the local responder yet: it goes first, then this answer completes it.
            self._to_cloud.insert(0, pending)
        return self._pump_cloud()

    def _complete_queued(
        self, message: QueuedMessage, answer: CallResult | CallError
    ) -> list[Command]:
        """A late answer to a message that was committed to the outbox meanwhile."""
        if isinstance(answer, CallError):
            if message in self._outbox:
                return self._outbox_answer(message, answer)
            return []  # on disk: it is replayed in its turn
        return self._outbox_answer(message, answer)

    def local_answer(
        self,
        message_id: str,
        answer: CallResult | CallError,
        queued: QueuedMessage | None = None,
    ) -> list[Command]:
        pending = self._local_inflight
        if pending is None or pending.call.id != message_id:
            log.warning(
                "%s: local answer for unknown call %s", self.charger_id, loggable(message_id)
            )
            return []
        self._local_inflight = None
        self.stats.answered_locally += 1
        call = pending.call
        answered_by = "gateway"
        waiting = not pending.orphaned  # the charger still waits for this answer
        completion: list[Command] = []
        if queued is not None:
            self._queued(queued)
            if pending.maybe_sent:
                self._maybe_delivered.add(queued.seq)
        late, pending.late = pending.late, None
        if late is not None:
            if queued is not None:
                completion = self._complete_queued(queued, late)
            elif isinstance(answer, CallError) and isinstance(late, CallResult):
                # The gateway could not store it, but the cloud has it: the charger hears that.
                answer, answered_by = self._site_word(call, late, completion), "cloud"
        elif queued is not None and pending is self._cloud_inflight:
            pending.message = queued  # the cloud's answer, when it comes, completes it
        elif pending is self._cloud_inflight and isinstance(answer, CallError):
            # The charger has its answer (it will send the message again): the cloud's, when
            # it comes, is recorded without a second answer to the charger.
            pending.orphaned = True
        elif isinstance(answer, CallResult) and self.cloud_configured:
            self._remember_for_replay(call)
        out: list[Command] = []
        if waiting:
            out.append(ToCharger(answer.raw))
        out.append(Exchanged(call, answer, answered_by))
        out.extend(completion)
        out.extend(self._pump_cloud())
        return out

    def resent_checked(
        self, message_id: str, answer: CallResult | CallError | None
    ) -> list[Command]:
        """The outbox lookup of :class:`AnswerIfResent` ended; ``answer`` None: not a copy."""
        pending = self._local_inflight
        if pending is None or pending.call.id != message_id:
            log.warning(
                "%s: resend check for unknown call %s", self.charger_id, loggable(message_id)
            )
            return []
        if answer is not None:
            log.info(
                "%s: %s was sent again after it had been queued; answered as before",
                self.charger_id,
                pending.call.action,
            )
            return self.local_answer(message_id, answer)
        self._local_inflight = None
        if pending.orphaned:  # its connection has gone: the charger sends it again, if at all
            return self._pump_cloud()
        # The first new message: from here on the charger sends only new ones.
        self._may_resend = False
        self._to_cloud.insert(0, pending)
        return self._pump_cloud()

    def on_timer(self) -> list[Command]:
        now = self._clock()
        out: list[Command] = []
        cloud = self._cloud_inflight
        if cloud is not None and cloud.deadline <= now:
            out.extend(self._cloud_overdue(cloud, now))
        elif cloud is None and self._retry_at and self._retry_at <= now:
            self._retry_at = 0.0
            out.extend(self._pump_cloud())
        if self._local_inflight is None and (
            self._cloud_inflight is not None or self.cloud_connecting
        ):
            head = self._waiting_charger_call()
            if head is not None and head.deadline <= now:
                # It waited its whole deadline behind a call the cloud has not answered.
                self._to_cloud.remove(head)
                log.info(
                    "%s: the cloud is still busy; %s %s answered by the gateway",
                    self.charger_id,
                    loggable(head.call.action),
                    loggable(head.call.id),
                )
                queue = self.cloud_configured and self._is_tx(head.call)
                out.extend(self._hand_to_responder(head, queue))
        charger = self._charger_inflight
        if charger is not None and charger.deadline <= now:
            self.stats.timeouts += 1
            self._charger_inflight = None
            log.warning(
                "%s: charger did not answer %s %s within %.0f s",
                self.charger_id,
                charger.call.action,
                charger.call.id,
                self._call_timeout,
            )
            if charger.origin is Origin.GATEWAY:
                out.append(GatewayDone(charger.call.id, None, "timeout"))
            out.extend(self._pump_charger())
        return out

    def _cloud_overdue(self, cloud: _Pending, now: float) -> list[Command]:
        """A call's deadline passed: it stays outstanding until answered or the link closes."""
        if cloud.overdue:
            log.error(
                "%s: the cloud has not answered %s %s for %.0f s; closing the connection to "
                "start afresh",
                self.charger_id,
                loggable(cloud.call.action),
                loggable(cloud.call.id),
                now - cloud.sent_at,
            )
            cloud.deadline = now + self._stall_timeout  # once more if the close does not come
            return [CloseCloud("no answer", self._epoch)]
        self.stats.timeouts += 1
        cloud.overdue = True
        cloud.deadline = cloud.sent_at + self._stall_timeout
        answered_here = cloud.origin is Origin.CHARGER
        if answered_here and cloud.call.action == "Authorize":
            waited, setting = self._authorize_timeout, "auth.online_timeout"
        else:
            waited, setting = self._call_timeout, "cloud.call_timeout"
        log.warning(
            "%s: the cloud did not answer %s %s within %g s (%s)%s; its answer is still awaited",
            self.charger_id,
            loggable(cloud.call.action),
            loggable(cloud.call.id),
            waited,
            setting,
            "; the gateway answers the charger" if answered_here else "",
        )
        if not answered_here:
            return []
        if self._local_inflight is not None:
            cloud.local_wanted = True  # handed over once the local responder is free
            return []
        queue = self.cloud_configured and self._is_tx(cloud.call)
        return self._hand_to_responder(cloud, queue)

    def _pump_cloud(self) -> list[Command]:
        """Move the next charger call on, then let the outbox use an idle cloud link.

        Charger calls are handled strictly in order (one relayed or one answered locally at a
        time). Live calls go before the outbox: the charger is waiting for their answer. The
        outbox waits for the replayed BootNotification and status messages.
        """
        if self.cloud_connecting:
            return []
        out: list[Command] = []
        cloud = self._cloud_inflight
        if cloud is not None and cloud.local_wanted and self._local_inflight is None:
            cloud.local_wanted = False  # overdue while the local responder was busy
            queue = self.cloud_configured and self._is_tx(cloud.call)
            out.extend(self._hand_to_responder(cloud, queue))
        if self._local_inflight is None and self._to_cloud:
            head = self._to_cloud[0]
            if head.late is not None or not self.cloud_up:
                out.extend(self._answer_locally_next())
            elif head.origin is Origin.CHARGER and self._must_queue(head.call):
                self._to_cloud.pop(0)
                self._local_inflight = head
                out.append(AnswerLocally(head.call, queue=True))
            elif self._may_resend and head.origin is Origin.CHARGER and self._is_tx(head.call):
                if cloud is None or not cloud.orphaned:
                    # (After the cloud answered what the charger's previous connection sent:
                    # that answer may be what makes this message a copy.)
                    self._to_cloud.pop(0)
                    self._local_inflight = head
                    out.append(AnswerIfResent(head.call))
            elif cloud is None:
                self._to_cloud.pop(0)
                now = self._clock()
                head.sent_at = now
                if head.origin is not Origin.CHARGER:  # a charger's: since the charger sent it
                    head.deadline = now + self._call_timeout
                self._cloud_inflight = head
                out.append(self._cloud_frame(self._for_cloud(head.call).raw))
        if (
            (self._outbox or self._outbox_more)  # (else there is nothing to send or load)
            and self.cloud_up
            and self._cloud_inflight is None
            and (
                not self._to_cloud
                or (self._local_inflight is not None and self._to_cloud[0].origin is Origin.CHARGER)
            )
        ):
            out.extend(self._send_outbox_head())
        return out

    def _answer_locally_next(self) -> list[Command]:
        """Hand the oldest queued charger call to the local responder (one at a time)."""
        out: list[Command] = []
        while self._to_cloud:
            pending = self._to_cloud.pop(0)
            if pending.origin is Origin.REPLAY:
                self._replay_failed(pending.call)
                continue
            queue = self.cloud_configured and self._is_tx(pending.call)
            out.extend(self._hand_to_responder(pending, queue))
            if self._local_inflight is not None:
                break
        return out

    def _hand_to_responder(self, pending: _Pending, queue: bool) -> list[Command]:
        """Hand a charger call to the local responder, which answers it in the charger's OCPP
        version (:mod:`edgegw.proxy.local`, :mod:`edgegw.proxy.local201` for 2.x)."""
        self._local_inflight = pending
        return [AnswerLocally(pending.call, queue=queue)]

    def _outbox_answer(
        self, message: QueuedMessage, answer: CallResult | CallError
    ) -> list[Command]:
        if self._reload:
            out = self._outbox_answer_now(message, answer)
            return out + self.reload_outbox()
        return self._outbox_answer_now(message, answer)

    def reload_outbox(self) -> list[Command]:
        """Parked messages were put back in the queue: read the outbox again from the start."""
        inflight = self._cloud_inflight
        if self._outbox_loading or (inflight is not None and inflight.origin is Origin.OUTBOX):
            self._reload = True  # once the message in flight is answered
            return []
        self._reload = False
        self._outbox.clear()
        self._outbox_last_seq = 0
        self._outbox_more = True
        self._retry_at = 0.0
        return self._pump_cloud()

    def outbox_loaded(self, messages: list[QueuedMessage], more: bool) -> list[Command]:
        """The shell loaded queued messages (after a :class:`LoadOutbox`).

        Only those of the link's OCPP version enter the window (a charger that changed version
        may have left the other's on disk): a 2.x TransactionEvent never goes over a 1.6 cloud
        link, nor a 1.6 StartTransaction over a 2.x one."""
        for message in messages:
            if message.seq > self._outbox_last_seq:
                self._outbox_last_seq = message.seq
                if message.seq in self._done_seqs:
                    self._done_seqs.discard(message.seq)  # completed by a late answer
                    continue
                if not self._own_version(message):
                    continue  # another version's: it stays queued for a link of that version
                self._outbox.append(message)
        self._outbox_more = more
        self._outbox_loading = False
        if self._reload:
            return self.reload_outbox()
        return self._pump_cloud()
