"""The soak's cloud CSMS: answers at once, records every call per connection, goes away on demand.

SimCloud records frames; the soak's check wants calls: for each CALL, the connection it came
on, whether its answer left the socket, and the transaction id a StartTransaction (or each copy
of one) was given. This cloud is minimal and records exactly that: it answers each CALL the way
a CSMS would (transaction ids numbered per charger, cards decided from a list, no schema
validation), records the call, and can be stopped (every connection closed, the port refused)
and started again on the same port for an outage.
"""

from __future__ import annotations

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

from tests.bench.soak_check import CloudCall, JsonDict


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SoakCloud:
    """A CSMS on ``ws://127.0.0.1:<port>/ocpp/<charger id>``, the same port across outages."""

    def __init__(self, accepted_tags: Iterable[str], *, port: int = 0) -> None:
        self.accepted_tags = {t.upper() for t in accepted_tags}
        self.calls: dict[str, list[CloudCall]] = {}
        self.actions: Counter[str] = Counter()  # calls received, per action
        self.unanswered = 0  # answers the closing connection dropped
        self.connections = 0
        self.refused_connections = 0
        self._port = port
        self._server: Server | None = None
        self._open: dict[str, ServerConnection] = {}
        self._next_tx: dict[str, int] = {}

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/ocpp"

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the soak cloud is already running")
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self._port,
            subprotocols=[Subprotocol("ocpp1.6")],
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
        server.close()
        await server.wait_closed()

    @property
    def received(self) -> int:
        return sum(self.actions.values())

    async def _handle(self, ws: ServerConnection) -> None:
        path = urlsplit(ws.request.path if ws.request else "").path
        charger_id = unquote(path.rsplit("/", 1)[-1]) if path.startswith("/ocpp/") else ""
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
        calls = self.calls.setdefault(charger_id, [])
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame[0] != 2:
                    continue  # this cloud never calls, so there is nothing to match
                _, message_id, action, payload = frame
                self.actions[action] += 1
                answer = self._answer(charger_id, action, payload)
                given = answer.get("transactionId") if action == "StartTransaction" else None
                at = time.time()
                try:
                    await ws.send(json.dumps([3, message_id, answer], separators=(",", ":")))
                except ConnectionClosed:
                    self.unanswered += 1
                    calls.append(CloudCall(action, payload, False, connection, at, given))
                    raise
                calls.append(CloudCall(action, payload, True, connection, at, given))
        except ConnectionClosed:
            pass
        finally:
            if self._open.get(charger_id) is ws:
                del self._open[charger_id]

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
