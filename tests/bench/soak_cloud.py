"""The soak's cloud CSMS: records every call per connection, goes away on demand, may be slow.

SimCloud records frames; the soak's check wants calls: for each CALL, the connection it came
on, whether its answer left the socket, and the transaction id a StartTransaction (or each copy
of one) was given. This cloud is minimal and records exactly that: it answers each CALL the way
a CSMS would (transaction ids numbered per charger, cards decided from a list, no schema
validation), records the call, and can be stopped (every connection closed, the port refused)
and started again on the same port for an outage.

By default it answers at once, one frame after the other. ``serial`` makes it behave like the
real CSMSs of issue 16: it keeps reading while a CALL is processed and answers a CALL that
arrives meanwhile CALLERROR ``GenericError`` "Call already in progress" (counted in
``refused``, never recorded as a call it took); ``delay`` (an
:data:`~edgegw.sim.cloud.AnswerDelay`, e.g. a :class:`~edgegw.sim.cloud.Stall` the soak
switches on now and then) holds answers. A CALL whose connection closes while it is processed
is processed all the same and recorded unanswered; one the cloud is processing when it stops
is dropped. ``ocpp2.0.1`` connections (the soak's ``--v201`` stations) are handed to a
:class:`~edgegw.sim.cloud201.SimCloud201` (:attr:`SoakCloud.v201`), serial and slow alike.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from edgegw.sim.cloud import CALL_IN_PROGRESS, AnswerDelay, IncomingCall
from edgegw.sim.cloud201 import SimCloud201
from edgegw.tasks import TaskOwner
from tests.bench.soak_check import CloudCall, JsonDict
from tests.v201.stations201 import CLOUD_MARK


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SoakCloud:
    """A CSMS on ``ws://127.0.0.1:<port>/ocpp/<charger id>``, the same port across outages."""

    def __init__(
        self,
        accepted_tags: Iterable[str],
        *,
        port: int = 0,
        serial: bool = False,
        delay: AnswerDelay | None = None,
    ) -> None:
        self.accepted_tags = {t.upper() for t in accepted_tags}
        self.serial = serial
        self.delay = delay
        self.calls: dict[str, list[CloudCall]] = {}
        self.actions: Counter[str] = Counter()  # calls received, per action
        self.refused: Counter[str] = Counter()  # overlapping calls refused, per action
        self.held = 0  # calls whose answer ``delay`` held back
        self.unanswered = 0  # answers the closing connection dropped
        self.connections = 0
        self.refused_connections = 0
        self._counts: Counter[str] = Counter()  # calls processed per charger
        self._action_counts: Counter[tuple[str, str]] = Counter()
        self._tasks = TaskOwner("soak-cloud")
        self._port = port
        self._server: Server | None = None
        self._open: dict[str, ServerConnection] = {}
        self._next_tx: dict[str, int] = {}
        self.v201 = SimCloud201(
            tokens=dict.fromkeys(self.accepted_tags, "Accepted"),
            serial=serial,
            delay_answers=delay or 0.0,
            personal_message=CLOUD_MARK,
        )
        """Serves the ``ocpp2.0.1`` connections (``--v201``), on the same URL."""

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/ocpp"

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the soak cloud is already running")
        self._tasks = TaskOwner("soak-cloud")
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self._port,
            subprotocols=[Subprotocol("ocpp1.6"), Subprotocol("ocpp2.0.1")],
            compression=None,
            max_queue=None,
            backlog=4096,
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """An outage: close every connection (1001) and stop listening."""
        server, self._server = self._server, None
        if server is None:
            return
        await self.v201.stop()  # what it was processing is dropped
        server.close()
        await server.wait_closed()
        await self._tasks.close("soak cloud stopped")  # what it was processing is dropped

    @property
    def received(self) -> int:
        return sum(self.actions.values())

    async def _handle(self, ws: ServerConnection) -> None:
        path = urlsplit(ws.request.path if ws.request else "").path
        charger_id = unquote(path.rsplit("/", 1)[-1]) if path.startswith("/ocpp/") else ""
        if charger_id and ws.subprotocol == "ocpp2.0.1":
            self.connections += 1
            await self.v201.handle(ws)
            return
        if not charger_id or ws.subprotocol != "ocpp1.6":
            self.refused_connections += 1
            await ws.close(1008, "unknown charge point or no ocpp1.6")
            return
        self.connections += 1
        connection = self.connections
        previous = self._open.get(charger_id)
        self._open[charger_id] = ws
        if previous is not None:
            await previous.close(1000, "replaced by a new connection")
        pending: asyncio.Task[bool] | None = None
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame[0] != 2:
                    continue  # this cloud never calls, so there is nothing to match
                message_id, action = frame[1], frame[2]
                if not self.serial:
                    if not await self._process(ws, charger_id, connection, frame):
                        break
                elif pending is not None and not pending.done():
                    self.refused[action] += 1
                    refusal = [4, message_id, "GenericError", CALL_IN_PROGRESS, {}]
                    await ws.send(json.dumps(refusal, separators=(",", ":")))
                else:
                    pending = self._tasks.spawn(
                        self._process(ws, charger_id, connection, frame),
                        f"{charger_id}:{message_id}",
                    )
        except ConnectionClosed:
            pass
        finally:
            if self._open.get(charger_id) is ws:
                del self._open[charger_id]

    async def _process(
        self, ws: ServerConnection, charger_id: str, connection: int, frame: list[Any]
    ) -> bool:
        """Answer one CALL and record it; False if the connection closed before the answer."""
        _, message_id, action, payload = frame
        arrived = time.time()  # a held call is recorded when it came, not when it was answered
        self.actions[action] += 1
        if self.delay is not None:
            self._counts[charger_id] += 1
            self._action_counts[charger_id, action] += 1
            seconds = self.delay(
                IncomingCall(
                    charger_id,
                    action,
                    payload,
                    self._counts[charger_id],
                    self._action_counts[charger_id, action],
                    time.monotonic(),
                )
            )
            if seconds > 0:
                self.held += 1
                await asyncio.sleep(seconds)  # the simulated CSMS is busy
        answer = self._answer(charger_id, action, payload)
        given = answer.get("transactionId") if action == "StartTransaction" else None
        at = arrived
        calls = self.calls.setdefault(charger_id, [])
        try:
            await ws.send(json.dumps([3, message_id, answer], separators=(",", ":")))
        except ConnectionClosed:
            self.unanswered += 1
            calls.append(CloudCall(action, payload, False, connection, at, given))
            return False
        calls.append(CloudCall(action, payload, True, connection, at, given))
        return True

    def _answer(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        if action == "BootNotification":
            return {"status": "Accepted", "currentTime": _now(), "interval": 300}
        if action == "Heartbeat":
            return {"currentTime": _now()}
        if action == "Authorize":
            return {"idTagInfo": {"status": self._status(payload.get("idTag"))}}
        if action == "StartTransaction":
            tx = self._next_tx.get(charger_id, 1)
            self._next_tx[charger_id] = tx + 1
            return {"transactionId": tx, "idTagInfo": {"status": self._status(payload["idTag"])}}
        if action == "StopTransaction":
            if "idTag" in payload:
                return {"idTagInfo": {"status": self._status(payload["idTag"])}}
            return {}
        if action == "DataTransfer":
            return {"status": "UnknownVendorId"}
        return {}  # StatusNotification, MeterValues, firmware/diagnostics status

    def _status(self, id_tag: Any) -> str:
        return "Accepted" if str(id_tag).upper() in self.accepted_tags else "Invalid"
