"""A simulated cloud CSMS: the operator's backend the gateway proxies chargers to.

Tests and ``edgegw demo`` need a cloud that behaves like a real one where it matters to the
gateway: identities in the URL path, Basic auth checked at the handshake (401/404), transaction
ids numbered per charger (as real CSMSs do, so ids repeat across chargers), idTag decisions
from a mutable tag list, and the ability to call any charger. It records every frame it
receives and sends, verbatim, so a test can prove the gateway relayed a message byte for byte
or replayed its outbox in order. It can be stopped and started again on the same port to
simulate an outage (or a restart of the CSMS): it forgets nothing across that.

By default it answers every CALL as soon as it can. The behaviours of real CSMSs that a
gateway must absorb are options:

* ``serial``: one CALL at a time per charger connection; a CALL that arrives while one is
  pending is answered CALLERROR ``GenericError`` "Call already in progress" (and kept in
  :attr:`SimCloud.refused`);
* ``delay_answers``: seconds before each answer, fixed or decided per CALL
  (:class:`IncomingCall` -> seconds; :class:`Stall`, :func:`stall_between` and
  :func:`nth_call` build the usual ones): a CSMS may take longer than the gateway waits,
  and answers all the same;
* ``concurrent_tx``: a StartTransaction for an idTag that already has an open transaction at
  that charger is answered ``ConcurrentTx`` with ``transactionId`` 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import http
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from ssl import SSLContext
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from ocpp.v16.enums import Action
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHeader
from websockets.headers import build_www_authenticate_basic, parse_authorization_basic
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from edgegw.sim import (
    OCPP16,
    AnswerFn,
    Frame,
    FrameTap,
    JsonDict,
    OcppPeer,
    Waiters,
    ocpp_error,
    route,
    utc_timestamp,
)
from edgegw.sim.lifecycle import ServedSim
from edgegw.tasks import TaskOwner

__all__ = [
    "CALL_IN_PROGRESS",
    "AnswerDelay",
    "CloudRecord",
    "IncomingCall",
    "SimCloud",
    "SimTransaction",
    "Stall",
    "nth_call",
    "stall_between",
]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class CloudRecord:
    """One frame the cloud received (``"in"``) or sent (``"out"``) on a charger's connection.

    ``message_type`` is 2/3/4 (0 for a frame that is not OCPP-J); ``action`` of an answer is
    the action of the CALL it answers; ``payload`` of a CALLERROR is ``{"errorCode",
    "errorDescription", "errorDetails"}``; ``raw`` is the exact text frame.
    """

    charger_id: str
    direction: Literal["in", "out"]
    message_type: int
    message_id: str
    action: str | None
    payload: Any
    raw: str
    at: float


@dataclasses.dataclass(slots=True)
class SimTransaction:
    """What the cloud knows about one transaction, keyed by ``(charger_id, transaction_id)``."""

    charger_id: str
    transaction_id: int
    id_tag: str
    connector_id: int
    meter_start: int
    start_timestamp: str
    meter_stop: int | None = None
    stop_timestamp: str | None = None
    reason: str | None = None
    stop_id_tag: str | None = None
    meter_values: list[JsonDict] = dataclasses.field(default_factory=list)

    @property
    def stopped(self) -> bool:
        return self.stop_timestamp is not None


CALL_IN_PROGRESS = "Call already in progress"
"""The errorDescription of a serial cloud's CALLERROR ``GenericError`` to an overlapping CALL."""


@dataclasses.dataclass(frozen=True, slots=True)
class IncomingCall:
    """A CALL the cloud is about to answer, as an answer delay sees it.

    ``number`` counts every CALL of this charger the cloud has processed (refused ones not
    included), from 1, across connections and restarts; ``action_number`` counts this charger's
    CALLs of ``action`` alike; ``at`` is ``time.monotonic()`` when processing began.
    """

    charger_id: str
    action: str
    payload: JsonDict
    number: int
    action_number: int
    at: float


AnswerDelay = Callable[[IncomingCall], float]
"""Seconds the cloud takes to answer a CALL (0 or less: at once)."""


class Stall:
    """An answer delay a test switches on: a CALL that arrives during a stall waits for its end.

    ``begin(seconds)`` starts a stall now (or extends the current one), ``end()`` ends it for
    CALLs still to come; those already waiting are answered when the stall would have ended,
    or at once after :meth:`SimCloud.release_delayed`. Use it as
    ``SimCloud(delay_answers=stall)``; ``stalled`` counts the CALLs it held.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.until = 0.0
        self.stalled = 0

    def begin(self, seconds: float) -> None:
        self.until = max(self.until, self._clock() + seconds)

    def end(self) -> None:
        self.until = 0.0

    @property
    def active(self) -> bool:
        return self._clock() < self.until

    def __call__(self, call: IncomingCall) -> float:
        left = self.until - self._clock()
        if left <= 0:
            return 0.0
        self.stalled += 1
        return left


def stall_between(
    start: float, end: float, *, clock: Callable[[], float] = time.monotonic
) -> AnswerDelay:
    """Every CALL that arrives between ``start`` and ``end`` (``clock`` times) waits for ``end``."""

    def delay(call: IncomingCall) -> float:
        now = clock()
        return end - now if start <= now < end else 0.0

    return delay


def nth_call(
    n: int, seconds: float, *, action: str | None = None, charger_id: str | None = None
) -> AnswerDelay:
    """The ``n``-th CALL of each charger (of ``action`` only, if given) takes ``seconds``."""

    def delay(call: IncomingCall) -> float:
        if charger_id is not None and call.charger_id != charger_id:
            return 0.0
        if action is None:
            return seconds if call.number == n else 0.0
        return seconds if call.action == action and call.action_number == n else 0.0

    return delay


class _CloudPeer(OcppPeer):
    """The cloud's end of one charger connection; every answer comes from SimCloud.

    With ``refuse`` set, the connection is served the way a serial CSMS serves it: frames keep
    being read while a CALL is processed, and a CALL that arrives meanwhile is handed to
    ``refuse`` (which answers it CALLERROR) instead of being processed.
    """

    def __init__(
        self,
        identity: str,
        tap: FrameTap,
        answer: AnswerFn,
        *,
        tasks: TaskOwner,
        refuse: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(identity, tap, answer)
        self._tasks = tasks
        self._refuse = refuse
        self._processing: asyncio.Task[None] | None = None
        self._call_count = 0

    async def serve(self) -> None:
        if self._refuse is None:
            await super().serve()  # one frame at a time: a CALL waits in the socket
            return
        while True:
            raw = await self.tap.recv()
            message_id = _call_id(raw)
            if message_id is None:
                await self.route_message(raw)  # an answer to one of the cloud's own calls
                continue
            busy = self._processing
            if busy is not None and not busy.done():
                await self._refuse(message_id)
                continue
            self._call_count += 1
            self._processing = self._tasks.spawn(
                self._process(raw), f"{self.id}:call-{self._call_count}"
            )

    async def _process(self, raw: str) -> None:
        # A CALL being processed when its connection closes is processed all the same (a CSMS
        # commits what it received); only its answer is lost, and noted in SimCloud.unsent.
        with contextlib.suppress(ConnectionClosed):
            await self.route_message(raw)

    on_authorize = route(Action.authorize)
    on_boot_notification = route(Action.boot_notification)
    on_data_transfer = route(Action.data_transfer)
    on_diagnostics_status_notification = route(Action.diagnostics_status_notification)
    on_firmware_status_notification = route(Action.firmware_status_notification)
    on_heartbeat = route(Action.heartbeat)
    on_meter_values = route(Action.meter_values)
    on_start_transaction = route(Action.start_transaction)
    on_status_notification = route(Action.status_notification)
    on_stop_transaction = route(Action.stop_transaction)


class SimCloud(ServedSim):
    """A cloud CSMS over ``websockets``: chargers connect to ``ws://host:port/<path>/<id>``.

    ``accepted_tags`` and ``blocked_tags`` are live sets (compared case-insensitively, blocked
    wins); ``boot_status``, ``heartbeat_interval``, ``delay_answers`` (seconds before each
    answer, or an :data:`AnswerDelay` deciding per CALL), ``concurrent_tx`` and
    ``error_actions`` (action -> CALLERROR code to answer instead) may be changed at any time;
    ``serial`` applies to connections made after it is set. ``history`` bounds :attr:`records`
    for long demos. ``ssl`` (a server context) makes it a ``wss://`` endpoint.

    :attr:`records` holds every frame in arrival order, copies included; :attr:`refused` the
    CALLs (their ``"in"`` records) a serial cloud refused because another was pending;
    :attr:`transactions` what the cloud made of the transaction messages. All of it, and the
    transaction numbering, survive a :meth:`stop` and :meth:`start`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/ocpp",
        accepted_tags: Iterable[str] = (),
        blocked_tags: Iterable[str] = (),
        passwords: Mapping[str, str] | None = None,
        boot_status: str = "Accepted",
        heartbeat_interval: int = 300,
        delay_answers: float | AnswerDelay = 0.0,
        serial: bool = False,
        concurrent_tx: bool = False,
        history: int | None = None,
        ssl: SSLContext | None = None,
    ) -> None:
        self.host = host
        self.ssl = ssl
        self.path = "/" + path.strip("/")
        self.accepted_tags: set[str] = set(accepted_tags)
        self.blocked_tags: set[str] = set(blocked_tags)
        self.passwords: dict[str, str] | None = None if passwords is None else dict(passwords)
        self.boot_status = boot_status
        self.heartbeat_interval = heartbeat_interval
        self.delay_answers: float | AnswerDelay = delay_answers
        self.serial = serial
        self.concurrent_tx = concurrent_tx
        self.error_actions: dict[str, str] = {}
        self.history = history
        self.records: list[CloudRecord] = []
        self.refused: list[CloudRecord] = []
        self.held: list[IncomingCall] = []
        """The CALLs whose answer was delayed, as the delay saw them."""
        self.transactions: dict[tuple[str, int], SimTransaction] = {}
        self.unsent: set[str] = set()
        """Message ids of frames recorded as sent that the closing connection dropped."""
        self.connected: set[str] = set()
        self._port = port
        self._server: Server | None = None
        self._peers: dict[str, _CloudPeer] = {}
        self._next_tx: dict[str, int] = {}
        self._calls: Counter[str] = Counter()  # CALLs processed per charger
        self._action_calls: Counter[tuple[str, str]] = Counter()  # ... per (charger, action)
        self._tasks = TaskOwner("sim-cloud")
        self._release = asyncio.Event()
        self._record_waiters: Waiters[CloudRecord] = Waiters()
        self._held_waiters: Waiters[IncomingCall] = Waiters()
        self._connect_waiters: Waiters[str] = Waiters()
        self._disconnect_waiters: Waiters[str] = Waiters()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen; after the first start the same port is reused (an outage is stop+start)."""
        if self._server is not None:
            raise RuntimeError("SimCloud is already running")
        self._tasks = TaskOwner(f"sim-cloud:{self._port}")
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            subprotocols=[Subprotocol(OCPP16)],
            select_subprotocol=_select_ocpp16,
            process_request=self._process_request,
            ssl=self.ssl,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("sim cloud listening on %s", self.url)

    async def stop(self) -> None:
        """Close every charger connection (code 1001) and stop listening.

        A serial cloud drops the CALLs it is still processing, unanswered and without effect,
        as a CSMS that is shut down does; what it had answered it keeps.
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
        await self._tasks.close("sim cloud stopped")
        log.info("sim cloud on port %d stopped", self._port)

    @property
    def url(self) -> str:
        """The CSMS endpoint URL; a charger appends ``/<charger id>``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "ws" if self.ssl is None else "wss"
        return f"{scheme}://{host}:{self.port}{self.path}"

    # ------------------------------------------------------------------ waiting and calling

    async def wait_connected(self, charger_id: str, timeout: float = 5) -> None:
        """Return once ``charger_id`` has an open connection (at once if it already has)."""
        await self._connect_waiters.wait(
            lambda cid: cid == charger_id,
            [charger_id] if charger_id in self.connected else [],
            timeout,
            f"charger {charger_id!r} to connect to the sim cloud",
        )

    async def wait_disconnected(self, charger_id: str, timeout: float = 5) -> None:
        """Return once ``charger_id`` has no open connection (at once if it has none)."""
        await self._disconnect_waiters.wait(
            lambda cid: cid == charger_id,
            [] if charger_id in self.connected else [charger_id],
            timeout,
            f"charger {charger_id!r} to disconnect from the sim cloud",
        )

    async def wait_for(
        self, predicate: Callable[[CloudRecord], bool], timeout: float = 5
    ) -> CloudRecord:
        """The first record, already received or still to come, for which ``predicate`` holds."""
        return await self._record_waiters.wait(
            predicate, list(self.records), timeout, "a matching sim cloud record"
        )

    async def wait_held(
        self, predicate: Callable[[IncomingCall], bool] = lambda _c: True, timeout: float = 5
    ) -> IncomingCall:
        """The first CALL, already held or still to come, whose answer is being delayed."""
        return await self._held_waiters.wait(
            predicate, list(self.held), timeout, "a CALL held by the sim cloud's answer delay"
        )

    def find(
        self,
        action: str | None = None,
        *,
        charger_id: str | None = None,
        direction: Literal["in", "out"] | None = None,
        message_type: int | None = None,
    ) -> list[CloudRecord]:
        """Records filtered by any of action, charger, direction and message type."""
        return [
            r
            for r in self.records
            if (action is None or r.action == action)
            and (charger_id is None or r.charger_id == charger_id)
            and (direction is None or r.direction == direction)
            and (message_type is None or r.message_type == message_type)
        ]

    async def call(
        self,
        charger_id: str,
        action: str,
        payload: Mapping[str, Any],
        timeout: float = 10,
        *,
        validate: bool = True,
    ) -> JsonDict:
        """Send CALL ``action`` (camelCase payload) to a connected charger; return its answer.

        A CALLERROR raises :class:`~edgegw.sim.SimCallError`; no answer in time raises
        :class:`TimeoutError`; an unknown or disconnected charger raises ConnectionError.
        """
        peer = self._peers.get(charger_id)
        if peer is None:
            raise ConnectionError(f"charger {charger_id!r} is not connected to the sim cloud")
        return await peer.send_call(action, payload, timeout=timeout, validate=validate)

    async def disconnect(self, charger_id: str, code: int = 1000, reason: str = "") -> None:
        """Close one charger's connection from the cloud side."""
        peer = self._peers.get(charger_id)
        if peer is not None:
            await peer.tap.ws.close(code, reason)

    def tag_status(self, id_tag: str) -> str:
        """The AuthorizationStatus this cloud gives ``id_tag`` right now."""
        folded = id_tag.casefold()
        if folded in {t.casefold() for t in self.blocked_tags}:
            return "Blocked"
        if folded in {t.casefold() for t in self.accepted_tags}:
            return "Accepted"
        return "Invalid"

    # ------------------------------------------------------------------ connections

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        charger_id = self._charger_id(request.path)
        if charger_id is None or (self.passwords is not None and charger_id not in self.passwords):
            log.info("sim cloud refused unknown identity at %s", request.path)
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Unknown charge point\n")
        if self.passwords is None:
            return None
        expected = self.passwords[charger_id]
        if not _basic_auth_ok(request.headers, charger_id, expected):
            log.info("sim cloud refused %s: bad or missing Basic credentials", charger_id)
            response = connection.respond(http.HTTPStatus.UNAUTHORIZED, "Invalid credentials\n")
            response.headers["WWW-Authenticate"] = build_www_authenticate_basic("edgegw-sim")
            return response
        return None

    def _charger_id(self, request_path: str) -> str | None:
        path = urlsplit(request_path).path
        prefix = self.path.rstrip("/") + "/"
        if not path.startswith(prefix):
            return None
        identity = unquote(path[len(prefix) :])
        if not identity or "/" in identity:
            return None
        return identity

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.subprotocol != OCPP16:
            # OCPP-J: complete the handshake without a subprotocol, then close at once.
            await ws.close(1002, "ocpp1.6 subprotocol required")
            return
        charger_id = self._charger_id(ws.request.path if ws.request else "")
        if charger_id is None:  # process_request already refused these
            await ws.close(1008, "unknown charge point")
            return

        def on_frame(frame: Frame) -> None:
            self._record(charger_id, frame)

        async def answer(action: str, payload: JsonDict) -> JsonDict:
            return await self._answer(charger_id, action, payload)

        async def refuse(message_id: str) -> None:
            await self._refuse(charger_id, peer, message_id)

        peer = _CloudPeer(
            charger_id,
            FrameTap(ws, on_frame, self.unsent.add),
            answer,
            tasks=self._tasks,
            refuse=refuse if self.serial else None,
        )
        previous = self._peers.get(charger_id)
        self._peers[charger_id] = peer
        if previous is not None:
            log.info("sim cloud: %s reconnected; closing its previous connection", charger_id)
            await previous.tap.ws.close(1000, "replaced by a new connection")
        self.connected.add(charger_id)
        self._connect_waiters.notify(charger_id)
        log.info("sim cloud: %s connected", charger_id)
        try:
            await peer.serve()
        except ConnectionClosed:
            pass
        finally:
            if self._peers.get(charger_id) is peer:
                del self._peers[charger_id]
                self.connected.discard(charger_id)
                self._disconnect_waiters.notify(charger_id)
            log.info("sim cloud: %s disconnected (code %s)", charger_id, ws.close_code)

    def _record(self, charger_id: str, frame: Frame) -> None:
        record = CloudRecord(
            charger_id=charger_id,
            direction=frame.direction,
            message_type=frame.message_type,
            message_id=frame.message_id,
            action=frame.action,
            payload=frame.payload,
            raw=frame.raw,
            at=frame.at,
        )
        self.records.append(record)
        if self.history is not None and len(self.records) > 2 * self.history:
            del self.records[: len(self.records) - self.history]
        self._record_waiters.notify(record)

    # ------------------------------------------------------------------ answers

    async def _refuse(self, charger_id: str, peer: _CloudPeer, message_id: str) -> None:
        """Answer an overlapping CALL as a serial CSMS does, and keep it in :attr:`refused`."""
        call = next(
            (
                r
                for r in reversed(self.records)
                if r.charger_id == charger_id and r.direction == "in" and r.message_id == message_id
            ),
            None,
        )
        if call is not None:
            self.refused.append(call)
        log.info(
            "sim cloud: %s sent %s while a CALL was pending; refused",
            charger_id,
            call.action if call is not None else message_id,
        )
        error = [4, message_id, "GenericError", CALL_IN_PROGRESS, {}]
        with contextlib.suppress(ConnectionClosed):
            await peer.tap.send(json.dumps(error, separators=(",", ":")))

    def _delay(self, charger_id: str, action: str, payload: JsonDict) -> float:
        self._calls[charger_id] += 1
        self._action_calls[charger_id, action] += 1
        call = IncomingCall(
            charger_id=charger_id,
            action=action,
            payload=payload,
            number=self._calls[charger_id],
            action_number=self._action_calls[charger_id, action],
            at=time.monotonic(),
        )
        delay = self.delay_answers
        seconds = delay(call) if callable(delay) else delay
        if seconds > 0:
            self.held.append(call)
            if self.history is not None and len(self.held) > 2 * self.history:
                del self.held[: len(self.held) - self.history]
            self._held_waiters.notify(call)
        return seconds

    def release_delayed(self) -> None:
        """Answer every CALL that is waiting out its delay now (a stalled backend recovers)."""
        release, self._release = self._release, asyncio.Event()
        release.set()

    async def _answer(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        delay = self._delay(charger_id, action, payload)
        if delay > 0:
            release = self._release
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # simulated slow backend, not a wait
                    await release.wait()
        code = self.error_actions.get(action)
        if code is not None:
            raise ocpp_error(code, f"sim cloud configured to refuse {action}")
        return self.respond(charger_id, action, payload)

    def respond(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        """The CALLRESULT payload for a CALL from a charger (also updates transactions)."""
        now = utc_timestamp(time.time())
        if action == "BootNotification":
            return {
                "status": self.boot_status,
                "currentTime": now,
                "interval": self.heartbeat_interval,
            }
        if action == "Heartbeat":
            return {"currentTime": now}
        if action == "Authorize":
            return {"idTagInfo": {"status": self.tag_status(str(payload["idTag"]))}}
        if action == "StartTransaction":
            return self._start_transaction(charger_id, payload)
        if action == "StopTransaction":
            return self._stop_transaction(charger_id, payload)
        if action == "MeterValues":
            tx = self.transactions.get((charger_id, payload.get("transactionId", -1)))
            if tx is not None:
                tx.meter_values.extend(payload.get("meterValue", []))
            return {}
        if action == "DataTransfer":
            answer: JsonDict = {"status": "Accepted"}
            if "data" in payload:
                answer["data"] = payload["data"]
            return answer
        return {}  # StatusNotification, Diagnostics/FirmwareStatusNotification

    def open_transaction(self, charger_id: str, id_tag: str) -> SimTransaction | None:
        """The transaction of ``id_tag`` (compared case-insensitively) still open at a charger."""
        folded = id_tag.casefold()
        return next(
            (
                t
                for (cid, _), t in self.transactions.items()
                if cid == charger_id and not t.stopped and t.id_tag.casefold() == folded
            ),
            None,
        )

    def _start_transaction(self, charger_id: str, payload: JsonDict) -> JsonDict:
        id_tag = str(payload["idTag"])
        if self.concurrent_tx and self.open_transaction(charger_id, id_tag) is not None:
            log.info("sim cloud: %s started a second transaction for %s", charger_id, id_tag)
            return {"transactionId": 0, "idTagInfo": {"status": "ConcurrentTx"}}
        tx_id = self._next_tx.get(charger_id, 1)
        self._next_tx[charger_id] = tx_id + 1
        self.transactions[(charger_id, tx_id)] = SimTransaction(
            charger_id=charger_id,
            transaction_id=tx_id,
            id_tag=id_tag,
            connector_id=int(payload["connectorId"]),
            meter_start=int(payload["meterStart"]),
            start_timestamp=str(payload["timestamp"]),
        )
        return {"transactionId": tx_id, "idTagInfo": {"status": self.tag_status(id_tag)}}

    def _stop_transaction(self, charger_id: str, payload: JsonDict) -> JsonDict:
        tx_id = int(payload["transactionId"])
        tx = self.transactions.get((charger_id, tx_id))
        if tx is None:
            log.warning("sim cloud: %s stopped unknown transaction %d", charger_id, tx_id)
        else:
            tx.meter_stop = int(payload["meterStop"])
            tx.stop_timestamp = str(payload["timestamp"])
            tx.reason = str(payload.get("reason", "Local"))
            tx.stop_id_tag = payload.get("idTag")
            tx.meter_values.extend(payload.get("transactionData", []))
        if "idTag" in payload:
            return {"idTagInfo": {"status": self.tag_status(str(payload["idTag"]))}}
        return {}


def _call_id(raw: str) -> str | None:
    """The message id of an OCPP-J CALL frame; None for any other frame."""
    try:
        msg = json.loads(raw)
    except ValueError:
        return None
    if isinstance(msg, list) and len(msg) >= 3 and msg[0] == 2 and isinstance(msg[1], str):
        return msg[1]
    return None


def _select_ocpp16(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """Pick ``ocpp1.6`` or nothing (the handler then closes; OCPP-J wants no HTTP refusal)."""
    return Subprotocol(OCPP16) if OCPP16 in offered else None


def _basic_auth_ok(headers: Headers, username: str, password: str) -> bool:
    try:
        given_user, given_password = parse_authorization_basic(headers["Authorization"])
    except (KeyError, InvalidHeader):
        return False
    return hmac.compare_digest(given_user.encode(), username.encode()) and hmac.compare_digest(
        given_password.encode(), password.encode()
    )
