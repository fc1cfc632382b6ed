"""A charger that keeps every message until it is answered: the outage test's OCPP driver.

OCPP 1.6 (§4.7, "transaction-related messages") asks a charge point to deliver StartTransaction,
StopTransaction and transaction MeterValues to its CSMS whatever happens: a message that got no
answer (the connection dropped, the server died, the charger itself lost power) is sent again,
unchanged, once a connection is back. :class:`RetryingCharger` does exactly that, over a real
WebSocket, and nothing more: one CALL in flight, every payload written by the test, every frame
recorded. It re-sends every unanswered call, not only transaction messages: for an Authorize
that is the driver tapping the card again, for a StatusNotification a harmless repeat.

SimCharger models a charge point's electrics; this driver models its message queue, so that a
test decides exactly which message is on the wire when the gateway is killed. A *power cut* can
be armed to strike the moment the answer to a chosen call arrives: the charger never sees that
answer, reconnects, boots again (BootNotification, StatusNotification) and re-sends the call,
which is the one way to be sure the gateway had committed a message the charger must send twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
SentHook = Callable[["RetryingCharger", str, JsonDict], None]
"""Called right after a CALL frame left the charger: ``(charger, action, payload)``."""
_CONFIGURATION = {"SupportedFeatureProfiles": "Core", "NumberOfConnectors": "1"}
"""What GetConfiguration reports: a Core-only charger (no local list to push)."""


class CallRefused(Exception):
    """The gateway answered a CALL with a CALLERROR (never expected in the outage test)."""


class GatewayUnreachable(ConnectionError):
    """The charger could not connect while the site said the gateway was up."""


class _AnswerLost(Exception):
    """The connection ended before the answer to the CALL in flight was read."""


@dataclass(frozen=True, slots=True)
class Answered:
    """A call of this charger and the answer it finally got."""

    action: str
    payload: JsonDict
    answer: JsonDict


@dataclass(frozen=True, slots=True)
class _InFlight:
    ws: ClientConnection
    message_id: str
    action: str
    payload: JsonDict
    answer: asyncio.Future[list[Any]]


@dataclass(slots=True)
class _PowerCut:
    matches: Callable[[str, JsonDict], bool]
    struck: bool = False


class RetryingCharger:
    """One charge point on ``<url>/<charger_id>``, re-sending whatever got no answer.

    ``gateway_up`` is set while the gateway accepts connections; the site clears it *before*
    it kills the gateway, so a charger that loses its connection waits for it instead of
    hammering a closed port. ``sent`` lists every CALL frame sent, copies included, as
    :func:`tests.sync.record.charger_record` expects; ``answered`` the calls that were
    answered, in order; ``lost_answers`` the answers a power cut kept from the charger.
    """

    def __init__(
        self,
        charger_id: str,
        url: str,
        *,
        gateway_up: asyncio.Event,
        on_sent: SentHook | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.charger_id = charger_id
        self.url = url.rstrip("/") + "/" + charger_id
        self.sent: list[str] = []
        self.answered: list[Answered] = []
        self.lost_answers: list[tuple[str, JsonDict, JsonDict]] = []
        self.gateway_calls: list[tuple[str, JsonDict]] = []
        self.connections = 0
        self.boots = 0
        self.connector_status = "Available"
        self._gateway_up = gateway_up
        self._on_sent = on_sent
        self._connect_timeout = connect_timeout
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._tasks = TaskOwner(f"driver:{charger_id}")
        self._inflight: _InFlight | None = None
        self._power_cut: _PowerCut | None = None
        self._must_boot = True

    # ------------------------------------------------------------ the charger's own calls

    async def call(self, action: str, payload: JsonDict) -> JsonDict:
        """Send ``action`` until it is answered; return the CALLRESULT payload.

        Every copy carries the same payload and a new message id (the ids of a connection
        that is gone mean nothing to the next one).
        """
        while True:
            ws = await self._connection()
            message_id = f"{self.charger_id}-{next(self._ids)}"
            frame = json.dumps([2, message_id, action, payload], separators=(",", ":"))
            answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
            self._inflight = _InFlight(ws, message_id, action, payload, answer)
            try:
                await ws.send(frame)
            except ConnectionClosed:
                self._inflight = None
                await ws.wait_closed()
                if self._ws is ws:
                    self._ws = None
                continue  # it never left; the next connection sends it
            self.sent.append(frame)
            if self._on_sent is not None:
                self._on_sent(self, action, payload)
            try:
                result = await answer
            except _AnswerLost:
                log.info("%s: no answer to %s; sending it again", self.charger_id, action)
                continue
            finally:
                self._inflight = None
            if result[0] == 4:
                raise CallRefused(f"{self.charger_id}: {action} answered {result[2:]}")
            self.answered.append(Answered(action, payload, result[2]))
            return dict(result[2])

    def power_cut_on_answer(self, matches: Callable[[str, JsonDict], bool]) -> None:
        """Lose power the moment the answer to the next matching call arrives (once)."""
        self._power_cut = _PowerCut(matches)

    @property
    def power_cut_struck(self) -> bool:
        return self._power_cut is not None and self._power_cut.struck

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        await self._tasks.close(f"{self.charger_id} closed")

    # ------------------------------------------------------------ connection

    async def _connection(self) -> ClientConnection:
        if self._ws is not None:
            return self._ws
        while True:
            await self._gateway_up.wait()
            try:
                ws = await connect(
                    self.url,
                    subprotocols=[Subprotocol("ocpp1.6")],
                    open_timeout=self._connect_timeout,
                    ping_interval=None,
                    proxy=None,
                )
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                if self._gateway_up.is_set():
                    raise GatewayUnreachable(
                        f"{self.charger_id} could not connect to {self.url} although the "
                        f"gateway is up: {exc!r}"
                    ) from exc
                continue  # the gateway was killed meanwhile; wait for the next one
            break
        self.connections += 1
        self._ws = ws
        self._tasks.spawn(self._read(ws), f"read-{self.connections}")
        if self._must_boot:
            self._must_boot = False
            await self._boot()
        return ws

    async def _boot(self) -> None:
        """What a charger sends first after power-up."""
        self.boots += 1
        boot = {
            "chargePointVendor": "edgegw-test",
            "chargePointModel": "RetryingCharger",
            "chargePointSerialNumber": self.charger_id,
            "firmwareVersion": "1.0",
        }
        answer = await self.call("BootNotification", boot)
        assert answer["status"] == "Accepted", answer
        await self.call(
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": self.connector_status},
        )

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame[0] == 2:
                    await self._answer_gateway(ws, frame)
                    continue
                inflight = self._inflight
                if inflight is None or inflight.ws is not ws or frame[1] != inflight.message_id:
                    log.warning("%s: answer to unknown id %s", self.charger_id, frame[1])
                    continue
                cut = self._power_cut
                if (
                    cut is not None
                    and not cut.struck
                    and cut.matches(inflight.action, inflight.payload)
                ):
                    cut.struck = True
                    self.lost_answers.append((inflight.action, inflight.payload, frame[2]))
                    log.info(
                        "%s: power cut as the %s answer arrived", self.charger_id, inflight.action
                    )
                    self._must_boot = True
                    ws.transport.abort()  # no closing handshake: the power is gone
                    break
                if not inflight.answer.done():
                    inflight.answer.set_result(frame)
        except ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._ws = None
            inflight = self._inflight
            if inflight is not None and inflight.ws is ws and not inflight.answer.done():
                inflight.answer.set_exception(_AnswerLost())

    async def _answer_gateway(self, ws: ClientConnection, frame: list[Any]) -> None:
        """The gateway's own calls: configuration is read-only, nothing else is supported."""
        _, message_id, action, payload = frame
        self.gateway_calls.append((action, payload))
        reply: list[Any]
        if action == "GetConfiguration":
            wanted = payload.get("key") or list(_CONFIGURATION)
            known = [
                {"key": k, "readonly": True, "value": _CONFIGURATION[k]}
                for k in wanted
                if k in _CONFIGURATION
            ]
            unknown = [k for k in wanted if k not in _CONFIGURATION]
            reply = [3, message_id, {"configurationKey": known, "unknownKey": unknown}]
        else:
            reply = [4, message_id, "NotImplemented", f"{action} is not supported", {}]
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(reply, separators=(",", ":")))
