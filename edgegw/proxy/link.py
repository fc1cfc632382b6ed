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
  latest StatusNotification per connector are sent first, so the cloud's view is whole again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from edgegw.proxy import frames, schemas
from edgegw.proxy.frames import Call, CallError, CallResult, FrameError

log = logging.getLogger(__name__)

_MAX_REPLAYED_ERRORS = 100  # error StatusNotifications kept per charger while the cloud is away


class Origin(Enum):
    CHARGER = "charger"  # a charger call relayed to the cloud
    CLOUD = "cloud"  # a cloud call relayed to the charger
    GATEWAY = "gateway"  # the gateway's own call to the charger
    REPLAY = "replay"  # the gateway re-sending a charger message to the cloud


# ---------------------------------------------------------------- commands (outputs)


@dataclass(frozen=True, slots=True)
class ToCharger:
    frame: str


@dataclass(frozen=True, slots=True)
class ToCloud:
    frame: str


@dataclass(frozen=True, slots=True)
class AnswerLocally:
    """The gateway must answer this charger call itself; feed the answer to ``local_answer``."""

    call: Call


@dataclass(frozen=True, slots=True)
class GatewayDone:
    """One of the gateway's own calls ended; ``answer`` is None on timeout or disconnect."""

    message_id: str
    answer: CallResult | CallError | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Exchanged:
    """A charger call was answered (by the cloud or locally): for the recorder."""

    call: Call
    answer: CallResult | CallError
    answered_by: str  # "cloud" | "gateway"


Command = ToCharger | ToCloud | AnswerLocally | GatewayDone | Exchanged


@dataclass(slots=True)
class _Pending:
    origin: Origin
    call: Call
    epoch: int = 0  # cloud connection epoch for CLOUD-origin calls
    deadline: float = 0.0


@dataclass(slots=True)
class LinkStats:
    from_charger: int = 0
    from_cloud: int = 0
    rejected: int = 0
    answered_locally: int = 0
    timeouts: int = 0


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
    ) -> None:
        self.charger_id = charger_id
        self.cloud_configured = cloud_configured
        self._validate = validate
        self._call_timeout = call_timeout
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

    # ------------------------------------------------------------ state for the shell/tests

    @property
    def queued_to_cloud(self) -> int:
        return len(self._to_cloud) + (self._cloud_inflight is not None)

    @property
    def queued_to_charger(self) -> int:
        return len(self._to_charger) + (self._charger_inflight is not None)

    def next_deadline(self) -> float | None:
        deadlines = [
            p.deadline for p in (self._cloud_inflight, self._charger_inflight) if p is not None
        ]
        return min(deadlines) if deadlines else None

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
        self._to_cloud.append(_Pending(Origin.CHARGER, call))
        return self._pump_cloud()

    def _charger_answer(self, answer: CallResult | CallError) -> list[Command]:
        pending = self._charger_inflight
        if pending is None or pending.call.id != answer.id:
            log.warning(
                "%s: dropped an answer to unknown message id %r", self.charger_id, answer.id
            )
            return []
        self._charger_inflight = None
        out: list[Command] = []
        if pending.origin is Origin.CLOUD:
            if pending.epoch == self._epoch and self.cloud_up:
                out.append(ToCloud(answer.raw))
            else:
                log.info(
                    "%s: answer to cloud call %s %s dropped: that cloud link is gone",
                    self.charger_id,
                    pending.call.action,
                    answer.id,
                )
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
                    out.append(ToCloud(error.raw))
            else:
                out.append(GatewayDone(item.call.id, None, "charger disconnected"))
        return out

    # ------------------------------------------------------------ cloud side

    def on_cloud_message(self, data: str | bytes) -> list[Command]:
        self.stats.from_cloud += 1
        try:
            frame = frames.parse(data)
        except FrameError as exc:
            return self._bad_frame("cloud", exc, ToCloud)
        if isinstance(frame, Call):
            problem = self._check_call(frame, schemas.CSMS_ACTIONS, "cloud")
            if problem is not None:
                self.stats.rejected += 1
                return [ToCloud(problem.raw)]
            if self._charger_gone:
                error = frames.make_error(frame.id, "GenericError", "charge point is not connected")
                return [ToCloud(error.raw)]
            self._to_charger.append(_Pending(Origin.CLOUD, frame, epoch=self._epoch))
            return self._pump_charger()
        return self._cloud_answer(frame)

    def _cloud_answer(self, answer: CallResult | CallError) -> list[Command]:
        pending = self._cloud_inflight
        if pending is None or pending.call.id != answer.id:
            log.warning(
                "%s: dropped a cloud answer to unknown message id %r", self.charger_id, answer.id
            )
            return []
        self._cloud_inflight = None
        out: list[Command] = []
        if pending.origin is Origin.CHARGER:
            out.append(ToCharger(answer.raw))
            out.append(Exchanged(pending.call, answer, "cloud"))
        else:
            self._replayed(pending.call, answer)
        out.extend(self._pump_cloud())
        return out

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
        replays: list[Call] = []
        if self._replay.boot is not None:
            replays.append(self._replay.boot)
        replays.extend(self._replay.errors)
        replays.extend(self._replay.status[c] for c in sorted(self._replay.status))
        # Replays go first, in order, ahead of anything the charger queued meanwhile.
        for call in reversed(replays):
            fresh = frames.with_id(call, f"edgegw-{self._new_id()}")
            self._to_cloud.appendleft(_Pending(Origin.REPLAY, fresh))
        self._replay.errors.clear()
        self._replay.status.clear()
        return self._pump_cloud()

    def cloud_disconnected(self) -> list[Command]:
        self.cloud_up = False
        self._epoch += 1
        # Cloud calls still queued for the charger came over the lost link: drop them.
        self._to_charger = deque(p for p in self._to_charger if p.origin is not Origin.CLOUD)
        out: list[Command] = []
        pending = self._cloud_inflight
        self._cloud_inflight = None
        if pending is not None:
            if pending.origin is Origin.CHARGER:
                self._to_cloud.appendleft(pending)
            else:
                self._replay_failed(pending.call)
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

    def local_answer(self, message_id: str, answer: CallResult | CallError) -> list[Command]:
        pending = self._local_inflight
        if pending is None or pending.call.id != message_id:
            log.warning("%s: local answer for unknown call %s", self.charger_id, message_id)
            return []
        self._local_inflight = None
        self.stats.answered_locally += 1
        call = pending.call
        if isinstance(answer, CallResult) and self.cloud_configured:
            self._remember_for_replay(call)
        out: list[Command] = [ToCharger(answer.raw), Exchanged(call, answer, "gateway")]
        out.extend(self._pump_cloud())
        return out

    def on_timer(self) -> list[Command]:
        now = self._clock()
        out: list[Command] = []
        cloud = self._cloud_inflight
        if cloud is not None and cloud.deadline <= now:
            self.stats.timeouts += 1
            self._cloud_inflight = None
            log.warning(
                "%s: cloud did not answer %s %s within %.0f s",
                self.charger_id,
                cloud.call.action,
                cloud.call.id,
                self._call_timeout,
            )
            if cloud.origin is Origin.CHARGER:
                self._to_cloud.appendleft(cloud)
                out.extend(self._answer_locally_next())
            else:
                self._replay_failed(cloud.call)
            out.extend(self._pump_cloud())
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

    # ------------------------------------------------------------ internals

    def _pump_cloud(self) -> list[Command]:
        if self._cloud_inflight is not None or self._local_inflight is not None:
            return []
        if not self._to_cloud or self.cloud_connecting:
            return []
        if not self.cloud_up:
            return self._answer_locally_next()
        pending = self._to_cloud.popleft()
        pending.deadline = self._clock() + self._call_timeout
        self._cloud_inflight = pending
        return [ToCloud(pending.call.raw)]

    def _answer_locally_next(self) -> list[Command]:
        """Hand the oldest queued charger call to the local responder (one at a time)."""
        while self._to_cloud:
            pending = self._to_cloud.popleft()
            if pending.origin is Origin.REPLAY:
                self._replay_failed(pending.call)
                continue
            self._local_inflight = pending
            return [AnswerLocally(pending.call)]
        return []

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

    def _replay_failed(self, call: Call) -> None:
        """A replayed message did not get through: keep it for the next connection."""
        self._remember_for_replay(call)

    def _replayed(self, call: Call, answer: CallResult | CallError) -> None:
        if isinstance(answer, CallError):
            log.warning(
                "%s: cloud refused replayed %s: %s %s",
                self.charger_id,
                call.action,
                answer.code,
                answer.description,
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
        if call.action not in schemas.CHARGER_ACTIONS | schemas.CSMS_ACTIONS:
            log.warning("%s: %s sent unknown action %r", self.charger_id, side, call.action)
            return frames.make_error(call.id, "NotImplemented", f"unknown action {call.action}")
        if call.action not in allowed:
            log.warning(
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
                log.warning(
                    "%s: %s sent an invalid %s: %s", self.charger_id, side, call.action, exc
                )
                return frames.make_error(call.id, exc.code, exc.description)
        return None

    def _bad_frame(
        self, side: str, exc: FrameError, reply: type[ToCharger] | type[ToCloud]
    ) -> list[Command]:
        self.stats.rejected += 1
        if not exc.reply:
            log.warning("%s: dropped a malformed frame from the %s: %s", self.charger_id, side, exc)
            return []
        log.warning("%s: malformed frame from the %s: %s", self.charger_id, side, exc)
        error = frames.make_error(exc.message_id, exc.code, exc.description)
        return [reply(error.raw)]
