"""A simulated cloud CSMS: the operator's backend the gateway proxies chargers to.

Tests and ``edgegw demo`` need a cloud that behaves like a real one where it matters to the
gateway: identities in the URL path, Basic auth checked at the handshake (401/404), transaction
ids numbered per charger (as real CSMSs do, so ids repeat across chargers), idTag decisions
from a mutable tag list, and the ability to call any charger. It records every frame it
receives and sends, verbatim, so a test can prove the gateway relayed a message byte for byte
or replayed its outbox in order. It can be stopped and started again on the same port to
simulate an outage.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import http
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any, Literal, Self
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
    Frame,
    FrameTap,
    JsonDict,
    OcppPeer,
    Waiters,
    ocpp_error,
    route,
    utc_timestamp,
)

__all__ = ["CloudRecord", "SimCloud", "SimTransaction"]

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


class _CloudPeer(OcppPeer):
    """The cloud's end of one charger connection; every answer comes from SimCloud."""

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


class SimCloud:
    """A cloud CSMS over ``websockets``: chargers connect to ``ws://host:port/<path>/<id>``.

    ``accepted_tags`` and ``blocked_tags`` are live sets (compared case-insensitively, blocked
    wins); ``boot_status``, ``heartbeat_interval``, ``delay_answers`` (seconds before each
    answer, for timeout tests) and ``error_actions`` (action -> CALLERROR code to answer
    instead) may be changed at any time. ``history`` bounds :attr:`records` for long demos.
    ``ssl`` (a server context) makes it a ``wss://`` endpoint.
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
        delay_answers: float = 0.0,
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
        self.delay_answers = delay_answers
        self.error_actions: dict[str, str] = {}
        self.history = history
        self.records: list[CloudRecord] = []
        self.transactions: dict[tuple[str, int], SimTransaction] = {}
        self.unsent: set[str] = set()
        """Message ids of frames recorded as sent that the closing connection dropped."""
        self.connected: set[str] = set()
        self._port = port
        self._server: Server | None = None
        self._peers: dict[str, _CloudPeer] = {}
        self._next_tx: dict[str, int] = {}
        self._record_waiters: Waiters[CloudRecord] = Waiters()
        self._connect_waiters: Waiters[str] = Waiters()
        self._disconnect_waiters: Waiters[str] = Waiters()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen; after the first start the same port is reused (an outage is stop+start)."""
        if self._server is not None:
            raise RuntimeError("SimCloud is already running")
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
        """Close every charger connection (code 1001) and stop listening."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
        log.info("sim cloud on port %d stopped", self._port)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("SimCloud has no port before its first start()")
        return self._port

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

        peer = _CloudPeer(charger_id, FrameTap(ws, on_frame, self.unsent.add), answer)
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

    async def _answer(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        if self.delay_answers > 0:
            await asyncio.sleep(self.delay_answers)  # simulated slow backend, not a wait
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

    def _start_transaction(self, charger_id: str, payload: JsonDict) -> JsonDict:
        tx_id = self._next_tx.get(charger_id, 1)
        self._next_tx[charger_id] = tx_id + 1
        id_tag = str(payload["idTag"])
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
