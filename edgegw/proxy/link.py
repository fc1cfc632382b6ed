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
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from edgegw.proxy import frames, schemas
from edgegw.proxy.frames import Call, CallError, CallResult, FrameError
from edgegw.proxy.hooks import SITE_CHECKED_ANSWERS, SITE_CHECKED_CALLS, SiteOverride
from edgegw.security.loggable import loggable
from edgegw.security.quiet_log import QuietLog
from edgegw.store.outbox import QueuedMessage

log = logging.getLogger(__name__)

_MAX_REPLAYED_ERRORS = 100  # error StatusNotifications kept per charger while the cloud is away
MAX_QUEUED_TO_CHARGER = 32
"""Calls waiting for one charger (it answers one at a time); the cloud's overflow is refused."""
STALL_FACTOR = 4
"""A call the cloud has not answered after this many ``call_timeout``s closes the connection."""
OUTBOX_WINDOW = 50
"""Queued messages a link keeps in memory; the rest wait on disk (an outage can last days).

Per charger: after a long outage every link holds its window at once, so 2,000 chargers hold
100,000 messages at 50, a gigabyte at 500. Replay sends one call at a time; reading the next
window every 50 messages costs one indexed query.
"""


class Origin(Enum):
    CHARGER = "charger"  # a charger call relayed to the cloud
    CLOUD = "cloud"  # a cloud call relayed to the charger
    GATEWAY = "gateway"  # the gateway's own call to the charger
    REPLAY = "replay"  # the gateway re-sending a charger message to the cloud
    OUTBOX = "outbox"  # a queued transaction message sent from the durable outbox


TRANSACTION_MESSAGES = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})
GATEWAY_ANSWERS_CLOUD = frozenset({"SendLocalList", "GetLocalListVersion"})
"""Cloud calls the gateway answers itself: it owns each charger's local list (see auth)."""


def _usable_transaction_message(call: Call) -> bool:
    """A transaction message with the fields the gateway itself needs to queue and record it
    (whatever else the schema finds wrong with it)."""
    p = call.payload
    if call.action == "StartTransaction":
        return (
            isinstance(p.get("connectorId"), int)
            and isinstance(p.get("idTag"), str)
            and isinstance(p.get("meterStart"), int)
            and isinstance(p.get("timestamp"), str)
        )
    if call.action == "StopTransaction":
        return (
            isinstance(p.get("transactionId"), int)
            and isinstance(p.get("meterStop"), int)
            and isinstance(p.get("timestamp"), str)
        )
    if call.action == "MeterValues":
        return isinstance(p.get("connectorId"), int) and isinstance(p.get("meterValue"), list)
    return False


def is_transaction_message(call: Call) -> bool:
    """StartTransaction, StopTransaction and MeterValues *of a transaction* (OCPP 1.6 §3.7)."""
    if call.action == "MeterValues":
        return isinstance(call.payload.get("transactionId"), int)
    return call.action in TRANSACTION_MESSAGES


@dataclass(frozen=True, slots=True)
class SyncParams:
    max_attempts: int = 5
    retry_interval: float = 5.0
    max_retry_interval: float = 300.0


# ---------------------------------------------------------------- commands (outputs)


@dataclass(frozen=True, slots=True)
class ToCharger:
    frame: str


@dataclass(frozen=True, slots=True)
class ToCloud:
    """Send ``frame`` on the cloud connection of ``epoch``; if it has gone since, drop it."""

    frame: str
    epoch: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class AnswerLocally:
    """The gateway must answer this charger call itself; feed the answer to ``local_answer``.

    With ``queue`` the call is a transaction message for the outbox: commit it first, then
    answer, and hand the queued message to ``local_answer``.
    """

    call: Call
    queue: bool = False


@dataclass(frozen=True, slots=True)
class AnswerIfResent:
    """Is this transaction message a copy of one in the outbox? Feed ``resent_checked``.

    If it is, the shell answers it as before (the outbox recognises the copy) and hands the
    answer to ``resent_checked``; if not, it hands ``None`` and the link relays the call.
    """

    call: Call


@dataclass(frozen=True, slots=True)
class LoadOutbox:
    """Load the charger's queued messages after seq ``after``; feed them to ``outbox_loaded``."""

    after: int


@dataclass(frozen=True, slots=True)
class Delivered:
    """The cloud accepted a queued message: remove it from the outbox (durably)."""

    message: QueuedMessage
    answer: CallResult
    cloud_transaction_id: int | None


@dataclass(frozen=True, slots=True)
class DeliveryFailed:
    """A queued message was refused or not answered; ``parked``: it will not be tried again."""

    message: QueuedMessage
    error: str
    parked: bool


@dataclass(frozen=True, slots=True)
class CloudVerdict:
    """The cloud's late answer to an Authorize the gateway had answered: learn the card."""

    call: Call
    answer: CallResult


@dataclass(frozen=True, slots=True)
class CloseCloud:
    """The cloud has not answered a call for far too long: close the connection and reconnect.

    Only a closed connection ends a call the cloud has not answered; the re-send after it is the
    one at-least-once window at the cloud boundary.
    """

    reason: str
    epoch: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class CloudCallForGateway:
    """A cloud call the gateway answers itself (the local list); send the answer to the cloud."""

    call: Call


@dataclass(frozen=True, slots=True)
class CloudExchanged:
    """A cloud call relayed to the charger ended (``answer`` None: no answer)."""

    call: Call
    answer: CallResult | CallError | None


@dataclass(frozen=True, slots=True)
class GatewayDone:
    """One of the gateway's own calls ended; ``answer`` is None on timeout or disconnect."""

    message_id: str
    answer: CallResult | CallError | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SiteOverridden:
    """The site's records overruled the cloud (an answer rewritten, a cloud call refused)."""

    action: str
    override: SiteOverride


@dataclass(frozen=True, slots=True)
class Exchanged:
    """A charger call was answered (by the cloud or locally): for the recorder."""

    call: Call
    answer: CallResult | CallError
    answered_by: str  # "cloud" | "gateway"


Command = (
    ToCharger
    | ToCloud
    | AnswerLocally
    | AnswerIfResent
    | GatewayDone
    | Exchanged
    | LoadOutbox
    | Delivered
    | DeliveryFailed
    | CloudCallForGateway
    | CloudExchanged
    | CloseCloud
    | CloudVerdict
    | SiteOverridden
)


@dataclass(slots=True)
class _Pending:
    origin: Origin
    call: Call
    epoch: int = 0  # cloud connection epoch for CLOUD-origin calls
    deadline: float = 0.0
    message: QueuedMessage | None = None  # what is being delivered (OUTBOX; an overdue CHARGER)
    sent_at: float = 0.0  # when it went to the cloud
    overdue: bool = False  # its deadline passed: the charger was answered locally
    orphaned: bool = False  # the charger connection that sent it has gone
    late: CallResult | CallError | None = None  # the cloud's answer, waiting for the local one
    maybe_sent: bool = False  # sent on a cloud connection that closed before it answered
    local_wanted: bool = False  # overdue while the local responder was busy


@dataclass(slots=True)
class LinkStats:
    from_charger: int = 0
    from_cloud: int = 0
    rejected: int = 0
    answered_locally: int = 0
    timeouts: int = 0
    delivered: int = 0
    parked: int = 0


@dataclass(slots=True)
class _Replay:
    boot: Call | None = None  # latest BootNotification answered locally, not yet relayed
    status: dict[int, Call] = field(default_factory=dict)  # latest per connector
    errors: list[Call] = field(default_factory=list)  # every error status answered locally


class Link:
    """Relay state for one charger. Not thread-safe; all calls happen on the event loop."""

    def __init__(
        self,
        charger_id: str,
        *,
        cloud_configured: bool,
        validate: bool,
        call_timeout: float,
        clock: Callable[[], float],
        new_id: Callable[[], str],
        authorize_timeout: float | None = None,
        sync: SyncParams | None = None,
        transaction_ids: dict[int, int | None] | None = None,
        parked_transactions: set[int] | None = None,
        cloud_filter: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
        answer_local_list: bool = False,
        check_resent: bool = False,
        stall_timeout: float | None = None,
        site_answer: Callable[[str, dict[str, Any], dict[str, Any]], SiteOverride | None]
        | None = None,
        site_call: Callable[[str, dict[str, Any]], SiteOverride | None] | None = None,
    ) -> None:
        self.charger_id = charger_id
        self.cloud_configured = cloud_configured
        self._validate = validate
        self._call_timeout = call_timeout
        self._authorize_timeout = authorize_timeout or call_timeout
        self._stall_timeout = stall_timeout or STALL_FACTOR * call_timeout
        self._sync = sync or SyncParams()
        self._cloud_filter = cloud_filter
        # The site's card authority: may overrule the cloud's Accepted (see edgegw.proxy.hooks).
        self._site_answer = site_answer
        self._site_call = site_call
        self._answer_local_list = answer_local_list
        # Transaction messages are looked up in the outbox until the first new one (see above).
        self._check_resent = check_resent and cloud_configured
        self._may_resend = self._check_resent
        # Local transaction id -> the cloud's (None until its StartTransaction was accepted).
        self._tx_map: dict[int, int | None] = dict(transaction_ids or {})
        self._to_local: dict[int, int] = {c: lo for lo, c in self._tx_map.items() if c is not None}
        self._parked_tx: set[int] = set(parked_transactions or ())
        # Local ids whose start the cloud answered without a usable id: why, for their followers.
        self._no_cloud_id: dict[int, str] = {}
        # Queued messages sent on a connection that closed before the cloud answered them.
        self._maybe_delivered: set[int] = set()
        # Queued messages completed by a late answer before they were read into the window.
        self._done_seqs: set[int] = set()
        # The outbox: a window of the queued messages, the rest stay on disk until needed.
        self._outbox: deque[QueuedMessage] = deque()
        self._outbox_more = False
        self._outbox_loading = cloud_configured  # the shell loads it first thing
        self._outbox_last_seq = 0
        self._retry_at = 0.0
        self._reload = False
        self._clock = clock
        self._new_id = new_id
        self.cloud_up = False
        # Until the first connection attempt to the cloud has succeeded or failed, charger calls
        # wait: answering them locally in that moment would make the gateway visible.
        self.cloud_connecting = cloud_configured
        self._epoch = 0
        self._to_cloud: deque[_Pending] = deque()
        self._cloud_inflight: _Pending | None = None
        self._local_inflight: _Pending | None = None
        self._to_charger: deque[_Pending] = deque()
        self._charger_inflight: _Pending | None = None
        self._replay = _Replay()
        self._charger_gone = False
        self.stats = LinkStats()
        # What a peer sends wrong is logged once a minute per kind, with a count of the rest.
        self._quiet = QuietLog(log, max_keys=16, clock=clock)

    # ------------------------------------------------------------ state for the shell/tests

    @property
    def queued_to_cloud(self) -> int:
        return len(self._to_cloud) + (self._cloud_inflight is not None)

    @property
    def queued_to_charger(self) -> int:
        return len(self._to_charger) + (self._charger_inflight is not None)

    @property
    def outbox_pending(self) -> bool:
        """Transaction messages are waiting in the outbox (new ones must queue behind them)."""
        return bool(self._outbox) or self._outbox_more or self._outbox_loading

    @property
    def outbox_window(self) -> int:
        return len(self._outbox)

    @property
    def owes_cloud(self) -> bool:
        """The cloud is owed something: an unanswered call, or queued transaction messages.

        While it is, the link's cloud connection stays open even if the charger has gone.
        """
        return (
            self._cloud_inflight is not None
            or self._local_inflight is not None
            or (self.cloud_configured and self.outbox_pending)
        )

    def next_deadline(self) -> float | None:
        # Asked after every event: no list, no min() over one or two values.
        cloud, charger = self._cloud_inflight, self._charger_inflight
        at = None if charger is None else charger.deadline
        if cloud is not None or self.cloud_connecting:
            first = cloud.deadline if cloud is not None else None
            if self._local_inflight is None:
                # A charger call waiting behind a busy cloud is answered locally at its deadline.
                waiting = self._waiting_charger_call()
                if waiting is not None and (first is None or waiting.deadline < first):
                    first = waiting.deadline
            if first is None:
                return at
        elif self._retry_at and self.cloud_up:
            first = self._retry_at
        else:
            return at
        return first if at is None or first < at else at

    # ------------------------------------------------------------ charger side

    def on_charger_message(self, data: str | bytes) -> list[Command]:
        self.stats.from_charger += 1
        try:
            frame = frames.parse(data)
        except FrameError as exc:
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
            out.append(CloudExchanged(pending.call, answer))
        else:
            out.append(GatewayDone(answer.id, answer))
        out.extend(self._pump_charger())
        return out

    def gateway_call(self, action: str, payload: dict[str, object]) -> tuple[str, list[Command]]:
        """Queue one of the gateway's own calls to the charger; returns its message id."""
        call = frames.make_call(f"edgegw-{self._new_id()}", action, dict(payload))
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
        kept = deque[_Pending]()
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
            return self._bad_frame("cloud", exc, self._cloud_frame)
        if isinstance(frame, Call):
            problem = self._check_call(frame, schemas.CSMS_ACTIONS, "cloud")
            if problem is not None:
                self.stats.rejected += 1
                return [self._cloud_frame(problem.raw)]
            if self._answer_local_list and frame.action in GATEWAY_ANSWERS_CLOUD:
                return [CloudCallForGateway(frame)]
            if self._charger_gone:
                error = frames.make_error(frame.id, "GenericError", "charge point is not connected")
                return [self._cloud_frame(error.raw)]
            if self._site_call is not None and frame.action in SITE_CHECKED_CALLS:
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
            call = self._for_charger(frame)
            self._to_charger.append(_Pending(Origin.CLOUD, call, epoch=self._epoch))
            return self._pump_charger()
        return self._cloud_answer(frame)

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
            if pending.overdue or pending.orphaned:
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
        if not (self.cloud_configured and is_transaction_message(call)):
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
            self._to_cloud.appendleft(pending)
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

    def _queue_replays(self) -> None:
        """What was answered locally goes to the cloud first, in order, ahead of anything else."""
        replays: list[Call] = []
        if self._replay.boot is not None:
            replays.append(self._replay.boot)
        replays.extend(self._replay.errors)
        replays.extend(self._replay.status[c] for c in sorted(self._replay.status))
        for call in reversed(replays):
            fresh = frames.with_id(call, f"edgegw-{self._new_id()}")
            self._to_cloud.appendleft(_Pending(Origin.REPLAY, fresh))
        self._replay.errors.clear()
        self._replay.status.clear()

    def cloud_disconnected(self) -> list[Command]:
        self.cloud_up = False
        self._epoch += 1
        # Cloud calls still queued for the charger came over the lost link: drop them.
        self._to_charger = deque(p for p in self._to_charger if p.origin is not Origin.CLOUD)
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
                    self._to_cloud.appendleft(pending)
                # else: answered locally at its deadline (a status or boot kept for replay)
            elif pending.origin is Origin.REPLAY:
                self._replay_failed(pending.call)
            elif pending.message is not None:
                # OUTBOX: still at the head of the outbox; it goes again next time.
                self._maybe_delivered.add(pending.message.seq)
        # Replays not yet sent are kept for the next connection, but not duplicated.
        kept = deque[_Pending]()
        for item in self._to_cloud:
            if item.origin is Origin.REPLAY:
                self._replay_failed(item.call)
            else:
                kept.append(item)
        self._to_cloud = kept
        out.extend(self._pump_cloud())
        return out

    # ------------------------------------------------------------ local answers, timers

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
        self._to_cloud.appendleft(pending)
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
                self._local_inflight = head
                log.info(
                    "%s: the cloud is still busy; %s %s answered by the gateway",
                    self.charger_id,
                    loggable(head.call.action),
                    loggable(head.call.id),
                )
                queue = self.cloud_configured and is_transaction_message(head.call)
                out.append(AnswerLocally(head.call, queue=queue))
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

    def _waiting_charger_call(self) -> _Pending | None:
        """The oldest charger call still waiting for the cloud (replays may stand before it)."""
        for item in self._to_cloud:
            if item.origin is Origin.CHARGER:
                return None if item.late is not None else item
        return None

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
        charger_call = cloud.origin is Origin.CHARGER
        if charger_call and cloud.call.action == "Authorize":
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
            "; the gateway answers the charger" if charger_call else "",
        )
        if not charger_call:
            return []
        if self._local_inflight is not None:
            cloud.local_wanted = True  # handed over once the local responder is free
            return []
        self._local_inflight = cloud
        queue = self.cloud_configured and is_transaction_message(cloud.call)
        return [AnswerLocally(cloud.call, queue=queue)]

    # ------------------------------------------------------------ internals

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
            self._local_inflight = cloud
            queue = self.cloud_configured and is_transaction_message(cloud.call)
            out.append(AnswerLocally(cloud.call, queue=queue))
        if self._local_inflight is None and self._to_cloud:
            head = self._to_cloud[0]
            if head.late is not None or not self.cloud_up:
                out.extend(self._answer_locally_next())
            elif head.origin is Origin.CHARGER and self._must_queue(head.call):
                self._to_cloud.popleft()
                self._local_inflight = head
                out.append(AnswerLocally(head.call, queue=True))
            elif (
                self._may_resend
                and head.origin is Origin.CHARGER
                and is_transaction_message(head.call)
            ):
                if cloud is None or not cloud.orphaned:
                    # (After the cloud answered what the charger's previous connection sent:
                    # that answer may be what makes this message a copy.)
                    self._to_cloud.popleft()
                    self._local_inflight = head
                    out.append(AnswerIfResent(head.call))
            elif cloud is None:
                self._to_cloud.popleft()
                now = self._clock()
                head.sent_at = now
                if head.origin is not Origin.CHARGER:  # a charger's: since the charger sent it
                    head.deadline = now + self._call_timeout
                self._cloud_inflight = head
                out.append(self._cloud_frame(self._for_cloud(head.call).raw))
        if (
            self.cloud_up
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
        while self._to_cloud:
            pending = self._to_cloud.popleft()
            if pending.origin is Origin.REPLAY:
                self._replay_failed(pending.call)
                continue
            self._local_inflight = pending
            queue = self.cloud_configured and is_transaction_message(pending.call)
            return [AnswerLocally(pending.call, queue=queue)]
        return []

    # ------------------------------------------------------------ the outbox

    def outbox_loaded(self, messages: list[QueuedMessage], more: bool) -> list[Command]:
        """The shell loaded queued messages (after a :class:`LoadOutbox`)."""
        for message in messages:
            if message.seq > self._outbox_last_seq:
                self._outbox_last_seq = message.seq
                if message.seq in self._done_seqs:
                    self._done_seqs.discard(message.seq)  # completed by a late answer
                    continue
                self._outbox.append(message)
        self._outbox_more = more
        self._outbox_loading = False
        if self._reload:
            return self.reload_outbox()
        return self._pump_cloud()

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

    def _queued(self, message: QueuedMessage) -> None:
        if message.action == "StartTransaction" and message.transaction_id is not None:
            self._tx_map[message.transaction_id] = None
        if self._outbox_loading or self._outbox_more or len(self._outbox) >= OUTBOX_WINDOW:
            self._outbox_more = True  # on disk; a later load brings it in order
        else:
            self._outbox.append(message)
            self._outbox_last_seq = message.seq

    def _must_queue(self, call: Call) -> bool:
        if not is_transaction_message(call):
            return False
        if self.outbox_pending:
            return True
        # A message of a transaction started offline whose start the cloud never accepted.
        local = call.payload.get("transactionId")
        return isinstance(local, int) and local in self._tx_map and self._tx_map[local] is None

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
                    self._outbox.popleft()
                    reason = self._no_cloud_id.get(local, "its StartTransaction was not accepted")
                    out.extend(self._park(message, reason))
                    continue
                payload = {**payload, "transactionId": cloud}
            call = frames.make_call(f"edgegw-{self._new_id()}", message.action, payload)
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

    def _outbox_answer(
        self, message: QueuedMessage, answer: CallResult | CallError
    ) -> list[Command]:
        if self._reload:
            out = self._outbox_answer_now(message, answer)
            return out + self.reload_outbox()
        return self._outbox_answer_now(message, answer)

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
            self._outbox.popleft()
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

    def _site_word(
        self, call: Call, answer: CallResult | CallError, out: list[Command]
    ) -> CallResult | CallError:
        """The cloud's answer to a charger call, unless the site's records overrule it."""
        if (
            self._site_answer is None
            or call.action not in SITE_CHECKED_ANSWERS
            or not isinstance(answer, CallResult)
        ):
            return answer
        override = self._site_answer(call.action, call.payload, answer.payload)
        if override is None:
            return answer
        out.append(SiteOverridden(call.action, override))
        return frames.make_result(answer.id, override.payload)

    def _for_cloud(self, call: Call) -> Call:
        """The charger's call as the cloud must see it: with the cloud's transaction id."""
        local = call.payload.get("transactionId")
        if call.action in ("StopTransaction", "MeterValues") and isinstance(local, int):
            cloud = self._tx_map.get(local)
            if cloud is not None:
                return frames.make_call(
                    call.id, call.action, {**call.payload, "transactionId": cloud}
                )
        return call

    def _for_charger(self, call: Call) -> Call:
        """The cloud's call as the charger must see it: its own transaction id, the site cap."""
        payload = call.payload
        if call.action == "RemoteStopTransaction":
            local = self._to_local.get(payload.get("transactionId"))  # type: ignore[arg-type]
            if local is not None:
                payload = {**payload, "transactionId": local}
        elif call.action == "SetChargingProfile":
            profile = payload.get("csChargingProfiles")
            if isinstance(profile, dict):
                local = self._to_local.get(profile.get("transactionId"))  # type: ignore[arg-type]
                if local is not None:
                    payload = {**payload, "csChargingProfiles": {**profile, "transactionId": local}}
        if self._cloud_filter is not None:
            payload = self._cloud_filter(call.action, payload)
        if payload is call.payload:
            return call
        return frames.make_call(call.id, call.action, payload)

    def _cloud_frame(self, frame: str) -> ToCloud:
        return ToCloud(frame, self._epoch)

    @property
    def cloud_epoch(self) -> int:
        """Changes whenever the cloud connection comes or goes."""
        return self._epoch

    def _pump_charger(self) -> list[Command]:
        if self._charger_inflight is not None or not self._to_charger:
            return []
        pending = self._to_charger.popleft()
        pending.deadline = self._clock() + self._call_timeout
        self._charger_inflight = pending
        return [ToCharger(pending.call.raw)]

    def _remember_for_replay(self, call: Call) -> None:
        if call.action == "BootNotification":
            self._replay.boot = call
        elif call.action == "StatusNotification":
            connector = call.payload.get("connectorId")
            if isinstance(connector, int):
                self._replay.status[connector] = call
            if call.payload.get("errorCode", "NoError") != "NoError":
                self._replay.errors.append(call)
                del self._replay.errors[:-_MAX_REPLAYED_ERRORS]

    def _forget_replay(self, call: Call) -> None:
        """The cloud answered ``call`` after all: it need not be replayed."""
        if self._replay.boot is call:
            self._replay.boot = None
        elif call.action == "StatusNotification":
            connector = call.payload.get("connectorId")
            if isinstance(connector, int) and self._replay.status.get(connector) is call:
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

    def _check_call(self, call: Call, allowed: frozenset[str], side: str) -> CallError | None:
        if call.action not in schemas.ALL_ACTIONS:
            action = loggable(call.action)
            self._quiet.warning(
                f"unknown:{side}", "%s: %s sent unknown action %s", self.charger_id, side, action
            )
            return frames.make_error(call.id, "NotImplemented", f"unknown action {action}")
        if call.action not in allowed:
            self._quiet.warning(
                f"direction:{side}",
                "%s: %s sent %s, which only the other side may send",
                self.charger_id,
                side,
                call.action,
            )
            return frames.make_error(
                call.id, "NotSupported", f"{call.action} is not sent by a {side}"
            )
        if self._validate:
            try:
                schemas.check_call(call.action, call.payload)
            except schemas.SchemaViolation as exc:
                if side == "charger" and _usable_transaction_message(call):
                    # Chargers re-send a transaction message they got an error for, for ever
                    # (Alfen's MeterValues with context "CurrentMax"): it goes on as sent.
                    self._quiet.warning(
                        f"tolerated:{call.action}",
                        "%s: charger sent an invalid %s (%s); relayed all the same: an error "
                        "would make it send the message again and again",
                        self.charger_id,
                        call.action,
                        loggable(str(exc), 300, quote=False),
                    )
                    return None
                self._quiet.warning(
                    f"invalid:{side}",
                    "%s: %s sent an invalid %s: %s",
                    self.charger_id,
                    side,
                    call.action,
                    loggable(str(exc), 300, quote=False),
                )
                return frames.make_error(call.id, exc.code, exc.description)
        return None

    def _bad_frame(
        self, side: str, exc: FrameError, reply: Callable[[str], ToCharger | ToCloud]
    ) -> list[Command]:
        self.stats.rejected += 1
        if not exc.reply:
            self._quiet.warning(
                f"dropped:{side}",
                "%s: dropped a malformed frame from the %s: %s",
                self.charger_id,
                side,
                loggable(str(exc), 300, quote=False),
            )
            return []
        self._quiet.warning(
            f"malformed:{side}",
            "%s: malformed frame from the %s: %s",
            self.charger_id,
            side,
            loggable(str(exc), 300, quote=False),
        )
        error = frames.make_error(exc.message_id, exc.code, exc.description)
        return [reply(error.raw)]
