"""The I/O shell around one charger's :class:`~edgegw.proxy.link.Link`.

A session owns the charger's cloud :class:`~edgegw.proxy.upstream.Upstream` (when a cloud is
configured), the charger's WebSocket while it is connected, and the link's commands. Readers
(charger socket, cloud socket) and the call timer feed events to the link, which answers at
once with commands, carried out in order: while nothing is queued, the task that fed the event
carries out what waits for nothing (frame sends the connection takes at once, the records and
observers) itself; what must wait (the store, a full socket buffer) and everything after it
goes to the session's executor task, started for it and ended when the queue is empty. So a
relayed frame costs no hand-off between tasks, and an idle charger no task.

A session lives from the charger's first connection (or from start-up, for a charger whose
queued messages are still owed to the cloud) until the charger has gone **and** the cloud is
owed nothing: no call it has not answered, no queued transaction message. So a late answer still
completes what it answers, and a charger that never returns still has its backlog delivered.
A charger that connects again meanwhile takes over the same session (:meth:`serve`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from edgegw.auth.cloudlist201 import answer_cloud_in
from edgegw.config import ChargerConfig, Config
from edgegw.ocpp.versions import OCPP16, is_v2
from edgegw.proxy import frames
from edgegw.proxy.cloudreturn import CloudReturn
from edgegw.proxy.fifo import Fifo
from edgegw.proxy.frames import Call, CallError, CallResult
from edgegw.proxy.handshake_trim import trim_server_handshake
from edgegw.proxy.hooks import ChargerObserver, CloudCallFilter, SiteOverride
from edgegw.proxy.keepalive import Keepalive
from edgegw.proxy.link import (
    OUTBOX_WINDOW,
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
    Link,
    LoadOutbox,
    SiteOverridden,
    SyncParams,
    ToCharger,
    ToCloud,
)
from edgegw.proxy.link_commands import message_ids
from edgegw.proxy.local import LocalResponder
from edgegw.proxy.rules import (
    LearnCard,
    Record,
    RecordBoot,
    RecordMeter201,
    RecordStart,
    RecordStart201,
    RecordStatus,
    RecordStop,
    RecordStop201,
    backlog_version,
    card_answer,
    offline_start_refused,
    offline_token_refused,
    records_of,
    remote_start_token,
)
from edgegw.proxy.sendnow import send_now
from edgegw.proxy.session_records import LateRefusals, Sessions201
from edgegw.proxy.upstream import NotConnected, Upstream
from edgegw.security.guarded import GuardedConnection
from edgegw.security.loggable import loggable
from edgegw.security.redact import redact_frame
from edgegw.store.store import Store
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)


class CallFailed(RuntimeError):
    """A gateway call got a CALLERROR, timed out, or the charger went away."""


class ChargerSession:
    """One charger's relay: its link core, its cloud connection, its socket while connected."""

    def __init__(
        self,
        charger_id: str,
        *,
        config: Config,
        charger: ChargerConfig | None,
        store: Store,
        responder: LocalResponder,
        clock: Callable[[], float] = time.time,
        transaction_ids: dict[int, int | None] | None = None,
        parked_transactions: set[int] | None = None,
        observers: Sequence[ChargerObserver] = (),
        cloud_filters: Sequence[CloudCallFilter] = (),
        cloud_return: CloudReturn | None = None,
        keepalive: Keepalive | None = None,
        charger_authorization: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        self.charger_id = charger_id
        self.ws: ServerConnection | None = None
        self._config = config
        self._store = store
        self._responder = responder
        self._observers = tuple(observers)
        self._filters = tuple(cloud_filters)
        self._log_frames = config.logging.frames
        cloud = config.cloud
        self.link = Link(
            charger_id,
            cloud_configured=cloud is not None,
            validate=config.server.validate_schemas,
            call_timeout=cloud.call_timeout if cloud else 30.0,
            clock=clock,
            new_id=message_ids(),
            authorize_timeout=config.auth.online_timeout,
            sync=SyncParams(
                config.sync.max_attempts,
                config.sync.retry_interval,
                config.sync.max_retry_interval,
            ),
            transaction_ids=transaction_ids,
            parked_transactions=parked_transactions,
            cloud_filter=self._filter_cloud_call if self._filters else None,
            answer_local_list=cloud is not None,
            check_resent=True,
            site_answer=self._site_answer if cloud is not None else None,
            site_call=self._site_call if cloud is not None else None,
        )
        self._commands: Fifo[Command] = Fifo()
        self._executor: asyncio.Task[None] | None = None
        self._started = False  # the executor may run (run() has set the link's version)
        self._batch: list[Command] | None = None  # the commands being carried out inline
        self._tasks = TaskOwner(f"charger:{charger_id}")
        self._sessions201 = Sessions201(charger_id, store, clock)
        self._late_refusals = LateRefusals(
            charger_id,
            store=store,
            stop_on_invalid_id=config.auth.stop_transaction_on_invalid_id,
            free_charging=lambda: responder.cards.free_charging(charger_id),
            call=self.call,
            tasks=self._tasks,
            post_event=self._post_event,
            failures=(CallFailed,),
        )
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._clock = clock
        self._waiters: dict[str, asyncio.Future[CallResult | CallError]] = {}
        self._released = asyncio.Event()
        self.closing = False
        self._spoken: str | None = None
        """The OCPP version of this session's connections (and cloud link); None: none yet."""
        self._refusal: str | None = None
        """Why the attached connection is closed unserved (another version, see attach)."""
        self.upstream: Upstream | None = None
        if cloud is not None:
            self.upstream = Upstream(
                charger_id,
                cloud,
                charger,
                charger_authorization=charger_authorization,
                user_agent=user_agent,
                on_connected=lambda: self._feed(self.link.cloud_connected()),
                on_failed=lambda: self._feed(self.link.cloud_unreachable()),
                on_message=self._from_cloud,
                on_disconnected=lambda _reason: self._feed(self.link.cloud_disconnected()),
                cloud_return=cloud_return,
                keepalive=keepalive,
            )

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """The session's life: until the charger has gone and the cloud is owed nothing."""
        if self._config.cloud is not None:
            self._queue(LoadOutbox(0))
        if self.ws is None:  # an orphan drain: the charger is away, cloud calls get an error
            # Delivered over a cloud link of the version of the oldest queued message.
            version = await self._orphan_version()
            if self.ws is None:  # (not attached meanwhile)
                self._spoken = version
                self.link.use_version(version)
                if self.upstream is not None:
                    self.upstream.use_subprotocol(version)
                self._feed(self.link.charger_closed())
        self._started = True
        if len(self._commands):
            self._executor = self._tasks.spawn(self._execute(), "executor")
        if self.upstream is not None:
            self._tasks.spawn(self.upstream.run(), "upstream")
        try:
            while True:
                self._check_released()
                await self._released.wait()
                if self.ws is None and not self.link.owes_cloud and not len(self._commands):
                    break
                self._released.clear()
        finally:
            self.closing = True
            if self._timer is not None:
                self._timer.cancel()
            if self.upstream is not None:
                await self.upstream.close()
            await self._tasks.close(f"{self.charger_id} done")

    async def _orphan_version(self) -> str:
        """The version of an orphan drain: its oldest queued message's (:func:`backlog_version`)."""
        try:
            head, _ = await self._store.outbox.load(self.charger_id, after=0, limit=1)
        except Exception:
            log.exception("%s: could not read the outbox's head", self.charger_id)
            return self.link.version
        return backlog_version(head[0].action if head else None) or self.link.version

    def attach(self, ws: ServerConnection) -> None:
        """A connection of the charger takes over the session (serve it with :meth:`serve`).

        A session outlives a connection only while the cloud is owed something on a cloud
        link of that connection's OCPP version. A connection with another version is refused
        until it is through (:meth:`serve` closes it, 1002): the cloud link cannot change
        version under what it owes, and a 1.6 backlog never goes over a 2.x cloud link.
        """
        assert not self.closing and self.ws is None, "one connection at a time"
        self.ws = ws
        self._released.clear()
        version = ws.subprotocol or OCPP16
        spoken = self._spoken
        if spoken is not None and spoken != version:
            self._refusal = f"subprotocol {spoken} required: its {spoken} messages are owed"
            log.warning(
                "%s: refused a connection with %s: the cloud is still owed messages of its %s "
                "connection (on a %s cloud link); it may connect with %s once they are through",
                self.charger_id,
                version,
                spoken,
                spoken,
                version,
            )
            return
        self._spoken = version
        request = ws.request
        if self.upstream is not None and request is not None:
            self.upstream.use_credentials(request.headers.get("Authorization"))
        trim_server_handshake(ws)  # (read: the daemon's new session, the line above)
        self.link.use_version(version)
        if self.upstream is not None:
            self.upstream.use_subprotocol(version, lambda reason: self.close(1002, reason))
        self._feed(self.link.charger_attached())

    async def serve(self) -> None:
        """Relay the attached connection until it closes (or the task is cancelled)."""
        ws = self.ws
        assert ws is not None, "attach first"
        refusal, self._refusal = self._refusal, None
        try:
            if refusal is not None:
                await ws.close(1002, refusal)
                return
            async for message in ws:
                if self._log_frames:
                    log.debug("%s <- charger %s", self.charger_id, _loggable(message))
                if isinstance(message, str):
                    self._store.log_frame(self.charger_id, "charger>", message)
                try:
                    commands = self.link.on_charger_message(message)
                except Exception as exc:
                    self._relay_failed(message, exc)
                else:
                    self._feed(commands)
        except ConnectionClosed:
            pass
        finally:
            await self._finish()

    @property
    def owes_cloud(self) -> bool:
        return self.link.owes_cloud

    def _check_released(self) -> None:
        if self.ws is None and not self.link.owes_cloud and not len(self._commands):
            self._released.set()

    async def detach(self) -> None:
        """The attached connection has ended (or could not be served): free the session."""
        if self.ws is not None:
            await self._finish()

    async def _finish(self) -> None:
        for command in self.link.charger_closed():
            self._queue(command)
        # Let the executor send what the link produced on the way out (errors to the cloud).
        try:
            await self._drain(timeout=1.0)
        finally:  # cancelled too: the session must be free for the charger's next connection
            self.ws = None
            for waiter in self._waiters.values():
                if not waiter.done():
                    waiter.set_exception(CallFailed(f"{self.charger_id} disconnected"))
        if self.link.owes_cloud:
            log.info(
                "%s: the cloud is still owed queued messages or an answer; its cloud link "
                "stays until they are through",
                self.charger_id,
            )
        self._check_released()

    async def _drain(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._commands.join()
        except TimeoutError:
            log.warning("%s: %d command(s) not sent on close", self.charger_id, len(self._commands))

    async def close(self, code: int = 1001, reason: str = "gateway shutting down") -> None:
        """Close the charger's connection (if it is connected)."""
        if self.ws is not None:
            await self.ws.close(code, reason)

    # ------------------------------------------------------------ gateway calls

    async def call(
        self, action: str, payload: dict[str, Any], timeout: float = 30.0, version: str = OCPP16
    ) -> dict[str, Any]:
        """Send one of the gateway's own calls to the charger and return its answer payload.

        ``version``: the OCPP version the call is written in; a charger speaking another one
        gets nothing and :class:`CallFailed` is raised."""
        message_id, commands = self.link.gateway_call(action, payload, version)
        waiter: asyncio.Future[CallResult | CallError] = asyncio.get_running_loop().create_future()
        self._waiters[message_id] = waiter
        self._feed(commands)
        try:
            async with asyncio.timeout(timeout):
                answer = await waiter
        finally:
            self._waiters.pop(message_id, None)
        if isinstance(answer, CallError):
            raise CallFailed(f"{action}: {answer.code} {answer.description}".strip())
        return answer.payload

    def reload_outbox(self) -> None:
        """Parked messages were requeued: the link reads the outbox again."""
        self._feed(self.link.reload_outbox())

    # ------------------------------------------------------------ plumbing

    def _from_cloud(self, message: str | bytes) -> None:
        if self._log_frames:
            log.debug("%s <- cloud %s", self.charger_id, _loggable(message))
        if isinstance(message, str):
            self._store.log_frame(self.charger_id, "cloud>", message)
        try:
            commands = self.link.on_cloud_message(message)
        except Exception as exc:
            self._relay_failed(message, exc)
        else:
            self._feed(commands)

    def _relay_failed(self, message: str | bytes, exc: Exception) -> None:
        """A bug the link hit on a frame costs that frame, never the connection."""
        log.error(
            "%s: the relay failed on a frame (%s); frame dropped",
            self.charger_id,
            loggable(message, 200),
            exc_info=exc,
        )

    def _feed(self, commands: list[Command]) -> None:
        """Carry out the link's commands in order: at once while nothing is queued (see the
        module's doc), else (and from the first that must wait) through the executor."""
        if commands:
            batch = self._batch
            if batch is not None:
                # Fed by a command being carried out inline: after the rest of its batch.
                batch.extend(commands)
            elif self._commands.idle:
                self._carry_out_now(commands)
            else:
                for command in commands:
                    self._queue(command)
        deadline, at = self.link.next_deadline(), self._timer_at
        if deadline is not None and (at is None or deadline < at):
            self._arm_timer(deadline)
        if self.ws is None:
            self._check_released()  # an event may settle what the cloud was owed, no command

    def _carry_out_now(self, commands: list[Command]) -> None:
        """Carry out in this task what waits for nothing, up to the first command that must
        wait: it and the rest go to the executor, in order (so nothing sent here overtakes a
        queued frame: the executor runs only while something is queued, and this only while
        nothing is)."""
        self._batch = commands
        done = 0
        try:
            for command in commands:  # (a command may feed more: appended, so carried out too)
                now = _NOW.get(type(command))
                if now is None:
                    break
                try:
                    if now(self, command) is False:  # the connection cannot take it at once
                        break
                except Exception:
                    log.exception(
                        "%s: failed to carry out %s", self.charger_id, type(command).__name__
                    )
                done += 1
        finally:
            self._batch = None
        for command in commands[done:]:
            self._queue(command)

    def _queue(self, command: Command) -> None:
        """Hand a command to the executor (started for it: it ends when nothing is queued)."""
        self._commands.put(command)
        if self._executor is None and self._started and not self.closing:
            self._executor = self._tasks.spawn(self._execute(), "executor")

    def _arm_timer(self, deadline: float) -> None:
        """Have the timer fire at ``deadline``, earlier than it would (or it was not armed).

        A deadline that moves later or goes away keeps the armed timer: it fires first,
        link.on_timer checks the clock and finds nothing due, _on_timer re-arms for the next.
        """
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - self._clock())
        self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._feed(self.link.on_timer())

    async def _execute(self) -> None:
        commands = self._commands
        try:
            while len(commands):
                command = commands.take()
                try:
                    wait = _WAIT.get(type(command))
                    if wait is None:
                        _NOW[type(command)](self, command)
                    else:
                        await wait(self, command)
                except Exception:
                    log.exception(
                        "%s: failed to carry out %s", self.charger_id, type(command).__name__
                    )
                finally:
                    commands.task_done()
                self._check_released()
        finally:
            self._executor = None

    # ------------------------------------------------------------ commands

    def _to_charger_now(self, command: ToCharger) -> bool:
        ws = self.ws
        if ws is None:
            log.debug("%s: charger gone before a frame could be sent", self.charger_id)
            return True
        frame = command.frame
        if not (ws.send_now(frame) if isinstance(ws, GuardedConnection) else send_now(ws, frame)):
            return False
        self._store.log_frame(self.charger_id, ">charger", frame)
        return True

    async def _send_to_charger(self, command: ToCharger) -> None:
        if self._to_charger_now(command):
            return
        ws = self.ws
        assert ws is not None
        self._store.log_frame(self.charger_id, ">charger", command.frame)
        try:
            await ws.send(command.frame)
        except ConnectionClosed:
            log.debug("%s: charger gone before a frame could be sent", self.charger_id)

    def _to_cloud_now(self, command: ToCloud) -> bool:
        if command.epoch != self.link.cloud_epoch:
            # Decided for a cloud connection that has gone since: the link re-routed it.
            log.debug("%s: frame for a closed cloud link dropped", self.charger_id)
            return True
        assert self.upstream is not None
        if not self.upstream.send_now(command.frame):
            return False
        self._store.log_frame(self.charger_id, ">cloud", command.frame)
        return True

    async def _send_to_cloud(self, command: ToCloud) -> None:
        if self._to_cloud_now(command):
            return
        self._store.log_frame(self.charger_id, ">cloud", command.frame)
        try:
            assert self.upstream is not None
            await self.upstream.send(command.frame)
        except NotConnected:
            # The disconnect event follows and the link re-routes what was in flight.
            log.debug("%s: cloud gone before a frame could be sent", self.charger_id)

    async def _answer_locally(self, command: AnswerLocally) -> None:
        v2 = is_v2(self.link.version)
        if command.queue:
            answer, queued = await self._responder.queue(self.charger_id, command.call, v2=v2)
            self._feed(self.link.local_answer(command.call.id, answer, queued))
        else:
            answer = await self._responder.answer(self.charger_id, command.call, v2=v2)
            if v2 and self._config.cloud is None:  # its records first: the durability rule
                answer = await self._sessions201.answered_standalone(command.call, answer)
            self._feed(self.link.local_answer(command.call.id, answer))

    async def _answer_if_resent(self, command: AnswerIfResent) -> None:
        resent = await self._responder.answer_if_resent(
            self.charger_id, command.call, v2=is_v2(self.link.version)
        )
        self._feed(self.link.resent_checked(command.call.id, resent))

    async def _load_outbox(self, command: LoadOutbox) -> None:
        messages, more = await self._store.outbox.load(
            self.charger_id, after=command.after, limit=OUTBOX_WINDOW
        )
        self._feed(self.link.outbox_loaded(messages, more))

    async def _delivery_failed(self, command: DeliveryFailed) -> None:
        await self._store.outbox.failed(command.message, command.error, parked=command.parked)
        if command.parked:
            self._post_event(
                "sync.parked",
                f"{command.message.action} parked: {command.error}",
                {"seq": command.message.seq},
            )

    def _cloud_verdict(self, command: CloudVerdict) -> None:
        learn = card_answer(command.call.payload, command.answer.payload)
        if learn is not None:
            self._carry_out(learn)

    async def _close_cloud(self, command: CloseCloud) -> None:
        if command.epoch == self.link.cloud_epoch and self.upstream is not None:
            await self.upstream.reconnect(command.reason)

    async def _cloud_call_for_gateway(self, command: CloudCallForGateway) -> None:
        await self._answer_cloud(command.call)

    def _cloud_call_done(self, command: CloudExchanged) -> None:
        self._cloud_exchanged(command.call, command.answer)

    def _gateway_done(self, command: GatewayDone) -> None:
        waiter = self._waiters.get(command.message_id)
        if waiter is not None and not waiter.done():
            if command.answer is None:
                waiter.set_exception(CallFailed(command.reason))
            else:
                waiter.set_result(command.answer)

    def _exchanged(self, command: Exchanged) -> None:
        if command.answered_by == "cloud":  # a copy sent after a lost answer gets this one
            self._responder.relayed(self.charger_id, command.call, command.answer)
        self._record(command.call, command.answer, command.answered_by)

    def _site_overridden(self, command: SiteOverridden) -> None:
        override = command.override
        log.warning("%s: %s", self.charger_id, override.reason)
        self._post_event(
            "auth.site_override", override.reason, {"action": command.action, **override.data}
        )

    def _site_answer(
        self, action: str, request: dict[str, Any], response: dict[str, Any]
    ) -> SiteOverride | None:
        try:
            return self._responder.cards.override_answer(self.charger_id, action, request, response)
        except Exception:  # the cloud's answer goes on as it is
            log.exception("%s: the site's check of the %s answer failed", self.charger_id, action)
            return None

    def _site_call(self, action: str, payload: dict[str, Any]) -> SiteOverride | None:
        try:
            return self._responder.cards.refuse_cloud_call(self.charger_id, action, payload)
        except Exception:  # relayed as it is
            log.exception("%s: the site's check of the cloud's %s failed", self.charger_id, action)
            return None

    def _filter_cloud_call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        for hook in self._filters:
            try:
                payload = hook.filter_cloud_call(self.charger_id, action, payload)
            except Exception:
                log.exception("%s: cloud call filter failed on %s", self.charger_id, action)
        return payload

    def _cloud_exchanged(self, call: Call, answer: CallResult | CallError | None) -> None:
        response = answer.payload if isinstance(answer, CallResult) else None
        if response is not None and response.get("status") == "Accepted":
            id_tag = remote_start_token(call.action, call.payload)
            if id_tag is not None:
                self._responder.cloud_started(self.charger_id, id_tag)
        for hook in self._filters:
            try:
                hook.cloud_call_answered(self.charger_id, call.action, call.payload, response)
            except Exception:
                log.exception("%s: cloud call hook failed on %s", self.charger_id, call.action)

    async def _answer_cloud(self, call: Call) -> None:
        """SendLocalList / GetLocalListVersion: the gateway owns the chargers' local lists."""
        try:
            payload = await answer_cloud_in(
                self.link.version, self._responder.cards.answer_cloud, call.action, call.payload
            )
            answer: CallResult | CallError = frames.make_result(call.id, payload)
        except Exception:
            log.exception("%s: answering the cloud's %s failed", self.charger_id, call.action)
            answer = frames.make_error(call.id, "InternalError", "gateway failed to process")
        await self._send_to_cloud(ToCloud(answer.raw, self.link.cloud_epoch))

    async def _delivered(self, command: Delivered) -> None:
        message = command.message
        await self._store.outbox.delivered(message, command.cloud_transaction_id)
        if message.action == "MeterValues":
            return  # no card, no start, no token: most of a replay, nothing more to read
        learn = card_answer(message.payload, command.answer.payload)
        if learn is not None:
            self._carry_out(learn)
        refused = offline_start_refused(
            message.action, message.payload, command.answer.payload, message.transaction_id
        )
        if refused is not None:
            await self._late_refusals.start_refused(refused)
        self._sessions201.delivered(message.action, message.payload)
        token_refused = offline_token_refused(
            message.action, message.payload, command.answer.payload
        )
        if token_refused is not None:
            await self._late_refusals.token_refused(token_refused)

    def _record(self, call: Call, answer: CallResult | CallError, answered_by: str) -> None:
        """Tell the observers, then hand what the exchange means for the records to the
        store's bookkeeping writer: the next call of this charger does not wait for them."""
        if isinstance(answer, CallError):
            if call.action == "NotifyReport":  # the report reached the gateway, whatever the
                self._tell_observers(call, {})  # cloud said of it (a probe waits for it)
            return
        self._tell_observers(call, answer.payload)
        for record in records_of(
            call.action,
            call.payload,
            answer.payload,
            answered_by,
            v2=is_v2(self.link.version),
            cloud_configured=self._config.cloud is not None,
        ):
            self._carry_out(record)

    def _tell_observers(self, call: Call, answer: dict[str, Any]) -> None:
        for observer in self._observers:
            try:
                observer.charger_exchanged(self.charger_id, call.action, call.payload, answer)
            except Exception:
                log.exception("%s: observer failed on %s", self.charger_id, call.action)

    def _carry_out(self, record: Record) -> None:
        store = self._store
        if isinstance(record, RecordStatus):
            store.record_status(self.charger_id, record.payload)  # kept in memory, batched
            return
        if isinstance(record, LearnCard):
            # Memory now (decisions read it), the disk in the bookkeeper's order.
            write = self._responder.cards.learn(
                self.charger_id, record.id_tag, record.info, literal=record.literal
            )
            if write is not None:
                store.bookkeeping.post(lambda: write, "a card answer")
        elif isinstance(record, RecordBoot):
            store.record_boot(self.charger_id, record.payload)
        elif isinstance(record, RecordStart):
            store.post_transaction_started(self.charger_id, record.payload, record.transaction_id)
        elif isinstance(record, RecordStop):
            store.post_transaction_stopped(self.charger_id, record.payload)
        elif isinstance(record, RecordStart201 | RecordStop201 | RecordMeter201):
            self._sessions201.carry_out(record)

    def _post_event(self, kind: str, message: str, data: dict[str, Any]) -> None:
        self._store.bookkeeping.post(
            lambda: self._store.event(kind, message, charger_id=self.charger_id, data=data),
            "an event",
        )


_NOW: dict[type[Any], Callable[[ChargerSession, Any], bool | None]] = {
    ToCharger: ChargerSession._to_charger_now,
    ToCloud: ChargerSession._to_cloud_now,
    Exchanged: ChargerSession._exchanged,
    GatewayDone: ChargerSession._gateway_done,
    CloudExchanged: ChargerSession._cloud_call_done,
    CloudVerdict: ChargerSession._cloud_verdict,
    SiteOverridden: ChargerSession._site_overridden,
}
"""Commands carried out without waiting, by command type; False: it must wait after all (a
frame the connection cannot take at once: the executor sends it with :data:`_WAIT`'s)."""

_WAIT: dict[type[Any], Callable[[ChargerSession, Any], Awaitable[None]]] = {
    ToCharger: ChargerSession._send_to_charger,
    ToCloud: ChargerSession._send_to_cloud,
    AnswerLocally: ChargerSession._answer_locally,
    AnswerIfResent: ChargerSession._answer_if_resent,
    LoadOutbox: ChargerSession._load_outbox,
    Delivered: ChargerSession._delivered,
    DeliveryFailed: ChargerSession._delivery_failed,
    CloseCloud: ChargerSession._close_cloud,
    CloudCallForGateway: ChargerSession._cloud_call_for_gateway,
}
"""Commands the executor awaits, by command type (the others: :data:`_NOW`'s)."""


def _loggable(message: str | bytes) -> str:
    """A frame for the debug log: passwords masked, control characters escaped, bounded."""
    text = redact_frame(message) if isinstance(message, str) else message
    return loggable(text, 4000, quote=False)
