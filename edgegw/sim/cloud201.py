"""A simulated OCPP 2.0.1 CSMS: the cloud a 2.0.1 station reaches through the gateway.

The 2.0.1 twin of :class:`~edgegw.sim.cloud.SimCloud`, on raw frames (as
:class:`~edgegw.sim.charger201.SimCharger201`): tests assert on what the gateway relayed and
replayed, so the cloud keeps every frame verbatim (:attr:`SimCloud201.records`, the 1.6 cloud's
:class:`~edgegw.sim.cloud.CloudRecord`) and every TransactionEvent it took
(:attr:`SimCloud201.events`: transaction id, ``seqNo``, ``eventType``, ``offline``,
``timestamp``). It behaves like the real CSMSs a gateway meets where it matters:

* identities in the URL path; ``ocpp2.0.1`` (and the other ``versions`` given) at the handshake,
  a client that offers none of them closed at once (1002) after it;
* ``serial`` (the default: real CSMSs process one CALL per connection at a time): a CALL that
  arrives while one is being processed is answered CALLERROR ``GenericError``
  :data:`~edgegw.sim.cloud.CALL_IN_PROGRESS` and kept in :attr:`SimCloud201.refused`, as the 1.6
  SimCloud's ``serial`` does;
* ``delay_answers``: seconds before each answer, fixed or decided per CALL from its
  :class:`~edgegw.sim.cloud.IncomingCall` (the 1.6 cloud's delays — ``Stall``, ``nth_call``,
  ``stall_between`` — work here too): real CSMSs take 30 s and more at times;
* Authorize and the ``idToken`` of a TransactionEvent answered from ``tokens`` (token text ->
  AuthorizationStatus, compared case-insensitively; any other token ``unknown_status``);
* :meth:`SimCloud201.stop` and :meth:`SimCloud201.start` on the same port (an outage, a CSMS
  restart): it forgets nothing across them. A CALL still being processed (waiting out its
  delay) when its connection closes is dropped without effect, as a CSMS that goes down drops
  what it had not committed: a TransactionEvent is recorded once its answer went out, not
  before (a CSMS whose answer is lost after its commit gets the event again: at least once is
  OCPP's promise, and such a copy would say nothing about the gateway);
* ``personal_message``: a text each TransactionEvent answer carries as
  ``updatedPersonalMessage``, so a station can tell the cloud's answers from those of a local
  controller (tests use it to check the ``offline`` flag against who answered).

The cloud can call a connected station (:meth:`SimCloud201.call`). :meth:`SimCloud201.handle`
serves one accepted WebSocket connection, so a front that serves several versions on one URL
(the demo's mixed cloud) can hand it the 2.0.1 connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from edgegw.sim import Frame, FrameTap, JsonDict, SimCallError, Waiters, utc_timestamp
from edgegw.sim.cloud import CALL_IN_PROGRESS, AnswerDelay, CloudRecord, IncomingCall
from edgegw.sim.lifecycle import ServedSim
from edgegw.tasks import TaskOwner

__all__ = ["OCPP201", "SimCloud201", "TxEventRecord", "by_transaction"]

log = logging.getLogger(__name__)

OCPP201 = "ocpp2.0.1"

_EMPTY_ANSWERS = frozenset(
    {
        "StatusNotification",
        "NotifyEvent",
        "NotifyReport",
        "SecurityEventNotification",
        "MeterValues",
        "FirmwareStatusNotification",
        "LogStatusNotification",
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class TxEventRecord:
    """One TransactionEvent as the cloud took it (copies included, each once per arrival).

    ``offline`` is the flag as it arrived (False when absent); ``raw`` the exact frame.
    """

    charger_id: str
    transaction_id: str
    seq_no: int
    event_type: str
    offline: bool
    timestamp: str
    message_id: str
    payload: JsonDict
    raw: str
    at: float


class _Connection:
    """The cloud's end of one station's connection."""

    def __init__(self, charger_id: str, tap: FrameTap) -> None:
        self.charger_id = charger_id
        self.tap = tap
        self.processing: asyncio.Task[None] | None = None
        self.pending: dict[str, asyncio.Future[JsonDict]] = {}
        self.ids = itertools.count(1)


class SimCloud201(ServedSim):
    """A 2.0.1 CSMS over ``websockets``: stations connect to ``ws://host:port/<path>/<id>``.

    ``tokens``, ``boot_status``, ``heartbeat_interval``, ``delay_answers``,
    ``personal_message`` and ``error_actions`` (action -> CALLERROR code to answer instead)
    may be changed at any time; ``serial`` applies to connections made after it is set.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/ocpp",
        versions: Sequence[str] = (OCPP201,),
        tokens: Mapping[str, str] | None = None,
        unknown_status: str = "Invalid",
        boot_status: str = "Accepted",
        heartbeat_interval: int = 300,
        delay_answers: float | AnswerDelay = 0.0,
        serial: bool = True,
        personal_message: str | None = None,
    ) -> None:
        self.host = host
        self.path = "/" + path.strip("/")
        self.versions = tuple(versions)
        self.tokens: dict[str, str] = {k.casefold(): v for k, v in (tokens or {}).items()}
        self.unknown_status = unknown_status
        self.boot_status = boot_status
        self.heartbeat_interval = heartbeat_interval
        self.delay_answers: float | AnswerDelay = delay_answers
        self.serial = serial
        self.personal_message = personal_message
        self.error_actions: dict[str, str] = {}
        self.records: list[CloudRecord] = []
        """Every frame in arrival order, both directions, copies included."""
        self.events: list[TxEventRecord] = []
        """Every TransactionEvent the cloud answered, in the order its answers went out."""
        self.refused: list[CloudRecord] = []
        """CALLs refused because another was being processed on their connection."""
        self.dropped: list[str] = []
        """Message ids of CALLs whose processing a closing connection cut short."""
        self.offered: list[tuple[str, ...]] = []
        """The subprotocols each connection offered, in order."""
        self.connected: set[str] = set()
        self._port = port
        self._server: Server | None = None
        self._connections: dict[str, _Connection] = {}
        self._calls: Counter[str] = Counter()
        self._action_calls: Counter[tuple[str, str]] = Counter()
        self._tasks = TaskOwner("sim-cloud201")
        self._event_waiters: Waiters[TxEventRecord] = Waiters()
        self._connect_waiters: Waiters[str] = Waiters()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen; after the first start the same port is reused (an outage is stop+start)."""
        if self._server is not None:
            raise RuntimeError("SimCloud201 is already running")
        self._tasks = TaskOwner(f"sim-cloud201:{self._port}")
        self._server = await serve(
            self.handle,
            self.host,
            self._port,
            subprotocols=[Subprotocol(v) for v in self.versions],
            select_subprotocol=self._select,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("sim 2.0.1 cloud listening on %s", self.url)

    async def stop(self) -> None:
        """Close every station's connection (1001) and stop listening; what was being
        processed is dropped unanswered and without effect (also when a front that hands its
        connections to :meth:`handle` goes down and calls this)."""
        server, self._server = self._server, None
        tasks, self._tasks = self._tasks, TaskOwner(f"sim-cloud201:{self._port}")
        await tasks.close("sim 2.0.1 cloud stopped")  # what is being processed first
        if server is None:  # a front serves the connections (handle): theirs to close
            return
        server.close()
        await server.wait_closed()
        log.info("sim 2.0.1 cloud on port %d stopped", self._port)

    @property
    def url(self) -> str:
        """The CSMS endpoint URL; a station appends ``/<identity>``."""
        return f"ws://{self.host}:{self.port}{self.path}"

    # ------------------------------------------------------------------ what it heard

    def seq_nos(self, charger_id: str, transaction_id: str | None = None) -> list[int]:
        """The ``seqNo`` of every TransactionEvent of a station (of one transaction), in the
        order the cloud took them, copies included."""
        return [
            e.seq_no
            for e in self.events
            if e.charger_id == charger_id
            and (transaction_id is None or e.transaction_id == transaction_id)
        ]

    async def wait_events(
        self, predicate: Callable[[TxEventRecord], bool], timeout: float = 5
    ) -> TxEventRecord:
        """The first TransactionEvent taken, already or still to come, matching ``predicate``."""
        return await self._event_waiters.wait(
            predicate, list(self.events), timeout, "a TransactionEvent at the 2.0.1 cloud"
        )

    async def wait_connected(self, charger_id: str, timeout: float = 5) -> None:
        await self._connect_waiters.wait(
            lambda cid: cid == charger_id,
            [charger_id] if charger_id in self.connected else [],
            timeout,
            f"station {charger_id!r} to connect to the 2.0.1 cloud",
        )

    def token_status(self, token: str) -> str:
        return self.tokens.get(token.casefold(), self.unknown_status)

    # ------------------------------------------------------------------ calling a station

    async def call(
        self, charger_id: str, action: str, payload: Mapping[str, Any], timeout: float = 10
    ) -> JsonDict:
        """Send CALL ``action`` to a connected station and return its CALLRESULT payload
        (CALLERROR: :class:`~edgegw.sim.SimCallError`; not connected: ConnectionError)."""
        conn = self._connections.get(charger_id)
        if conn is None:
            raise ConnectionError(f"station {charger_id!r} is not connected to the 2.0.1 cloud")
        message_id = f"csms-{next(conn.ids)}"
        future: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        conn.pending[message_id] = future
        try:
            await conn.tap.send(json.dumps([2, message_id, action, dict(payload)]))
            async with asyncio.timeout(timeout):
                return await future
        except ConnectionClosed as exc:
            raise ConnectionError(f"station {charger_id!r} is gone") from exc
        finally:
            conn.pending.pop(message_id, None)

    # ------------------------------------------------------------------ connections

    def _select(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        """The first version offered that this cloud speaks, or none: the handshake then
        completes without a subprotocol and :meth:`handle` closes (OCPP-J wants no HTTP
        refusal)."""
        return next((p for p in offered if p in self.versions), None)

    async def handle(self, ws: ServerConnection) -> None:
        """Serve one accepted connection until it closes."""
        request = ws.request
        self.offered.append(
            tuple(request.headers.get_all("Sec-WebSocket-Protocol")) if request else ()
        )
        charger_id = self._charger_id(request.path if request is not None else "")
        if ws.subprotocol not in self.versions:
            await ws.close(1002, f"{' or '.join(self.versions)} required")
            return
        if charger_id is None:
            await ws.close(1008, "unknown charging station")
            return
        conn = _Connection(charger_id, FrameTap(ws, lambda f: self._record(charger_id, f)))
        previous = self._connections.get(charger_id)
        self._connections[charger_id] = conn
        if previous is not None:
            await previous.tap.ws.close(1000, "replaced by a new connection")
        self.connected.add(charger_id)
        self._connect_waiters.notify(charger_id)
        try:
            await self._serve(conn)
        except ConnectionClosed:
            pass
        finally:
            busy = conn.processing
            if busy is not None and not busy.done():
                busy.cancel()
            for future in conn.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
            if self._connections.get(charger_id) is conn:
                del self._connections[charger_id]
                self.connected.discard(charger_id)

    def _charger_id(self, request_path: str) -> str | None:
        path = urlsplit(request_path).path
        prefix = self.path.rstrip("/") + "/"
        if not path.startswith(prefix):
            return None
        identity = unquote(path[len(prefix) :])
        return identity if identity and "/" not in identity else None

    async def _serve(self, conn: _Connection) -> None:
        while True:
            raw = await conn.tap.recv()
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(frame, list) or len(frame) < 3:
                continue
            if frame[0] in (3, 4):
                self._answered(conn, frame)
                continue
            if frame[0] != 2 or len(frame) != 4 or not isinstance(frame[1], str):
                continue
            message_id, action, payload = frame[1], str(frame[2]), frame[3]
            request = payload if isinstance(payload, dict) else {}
            busy = conn.processing
            if busy is not None and not busy.done():
                await self._refuse(conn, message_id)
                continue
            task = self._tasks.spawn(
                self._process(conn, message_id, action, request),
                f"{conn.charger_id}:{action}:{message_id}",
            )
            conn.processing = task
            if not self.serial:  # one at a time: the next CALL waits in the socket
                await asyncio.wait({task})

    def _answered(self, conn: _Connection, frame: list[Any]) -> None:
        future = conn.pending.get(str(frame[1]))
        if future is None or future.done():
            return
        if frame[0] == 3:
            future.set_result(frame[2] if isinstance(frame[2], dict) else {})
        else:
            details = frame[4] if len(frame) > 4 and isinstance(frame[4], dict) else {}
            future.set_exception(SimCallError(str(frame[2]), str(frame[3]), details))

    def _record(self, charger_id: str, frame: Frame) -> None:
        self.records.append(
            CloudRecord(
                charger_id=charger_id,
                direction=frame.direction,
                message_type=frame.message_type,
                message_id=frame.message_id,
                action=frame.action,
                payload=frame.payload,
                raw=frame.raw,
                at=frame.at,
            )
        )

    async def _refuse(self, conn: _Connection, message_id: str) -> None:
        call = next(
            (
                r
                for r in reversed(self.records)
                if r.charger_id == conn.charger_id
                and r.direction == "in"
                and r.message_id == message_id
            ),
            None,
        )
        if call is not None:
            self.refused.append(call)
        log.info("sim 2.0.1 cloud: %s sent a CALL while one was pending", conn.charger_id)
        error = [4, message_id, "GenericError", CALL_IN_PROGRESS, {}]
        with contextlib.suppress(ConnectionClosed):
            await conn.tap.send(json.dumps(error, separators=(",", ":")))

    # ------------------------------------------------------------------ answers

    def _delay(self, charger_id: str, action: str, payload: JsonDict) -> float:
        self._calls[charger_id] += 1
        self._action_calls[charger_id, action] += 1
        delay = self.delay_answers
        if not callable(delay):
            return delay
        return delay(
            IncomingCall(
                charger_id=charger_id,
                action=action,
                payload=payload,
                number=self._calls[charger_id],
                action_number=self._action_calls[charger_id, action],
                at=time.monotonic(),
            )
        )

    async def _process(
        self, conn: _Connection, message_id: str, action: str, payload: JsonDict
    ) -> None:
        delay = self._delay(conn.charger_id, action, payload)
        try:
            if delay > 0:
                await asyncio.sleep(delay)  # a slow backend, not a wait for readiness
        except asyncio.CancelledError:
            self.dropped.append(message_id)  # the connection closed first: no effect
            raise
        code = self.error_actions.get(action)
        if code is not None:
            reply: list[Any] = [4, message_id, code, f"sim cloud refuses {action}", {}]
        else:
            answer = self.respond(conn.charger_id, action, payload)
            if answer is None:
                reply = [4, message_id, "NotImplemented", f"{action} not implemented", {}]
            else:
                reply = [3, message_id, answer]
        try:
            await conn.tap.send(json.dumps(reply, separators=(",", ":")))
        except ConnectionClosed:
            self.dropped.append(message_id)  # no answer went out: taken as never received
            return
        if reply[0] == 3 and action == "TransactionEvent":
            self._take_event(conn, message_id, payload)

    def _take_event(self, conn: _Connection, message_id: str, payload: JsonDict) -> None:
        raw = next(
            (
                r.raw
                for r in reversed(self.records)
                if r.charger_id == conn.charger_id
                and r.direction == "in"
                and r.message_id == message_id
            ),
            "",
        )
        info = payload.get("transactionInfo")
        tx = info.get("transactionId") if isinstance(info, dict) else None
        seq = payload.get("seqNo")
        record = TxEventRecord(
            charger_id=conn.charger_id,
            transaction_id=tx if isinstance(tx, str) else "",
            seq_no=seq if isinstance(seq, int) and not isinstance(seq, bool) else -1,
            event_type=str(payload.get("eventType", "")),
            offline=payload.get("offline") is True,
            timestamp=str(payload.get("timestamp", "")),
            message_id=message_id,
            payload=payload,
            raw=raw,
            at=time.time(),
        )
        self.events.append(record)
        self._event_waiters.notify(record)

    def _token_info(self, token: Any) -> JsonDict:
        text = token.get("idToken") if isinstance(token, dict) else None
        if not isinstance(text, str):
            return {"status": "Invalid"}
        if isinstance(token, dict) and token.get("type") == "NoAuthorization":
            return {"status": "Accepted"}
        return {"status": self.token_status(text)}

    def respond(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict | None:
        """The CALLRESULT payload for a station's CALL; None: not implemented here."""
        now = utc_timestamp(time.time())
        if action == "BootNotification":
            return {
                "currentTime": now,
                "interval": self.heartbeat_interval,
                "status": self.boot_status,
            }
        if action == "Heartbeat":
            return {"currentTime": now}
        if action in _EMPTY_ANSWERS:
            return {}
        if action == "Authorize":
            return {"idTokenInfo": self._token_info(payload.get("idToken"))}
        if action == "TransactionEvent":
            answer: JsonDict = {}
            if "idToken" in payload:
                answer["idTokenInfo"] = self._token_info(payload["idToken"])
            if self.personal_message is not None:
                answer["updatedPersonalMessage"] = {
                    "format": "UTF8",
                    "content": self.personal_message,
                }
            return answer
        if action == "DataTransfer":
            return {"status": "UnknownVendorId"}
        return None


def by_transaction(events: Iterable[TxEventRecord]) -> dict[tuple[str, str], list[int]]:
    """``seqNo`` lists keyed by (station, transaction id), in the order taken."""
    grouped: dict[tuple[str, str], list[int]] = {}
    for event in events:
        grouped.setdefault((event.charger_id, event.transaction_id), []).append(event.seq_no)
    return grouped
