"""A simulated OCPP 2.0.1 charging station (WebSocket client), frame by frame.

Built on raw frames rather than on the ``ocpp`` library's ``ChargePoint``: tests of a relay
assert on bytes, and a test may send exactly what it writes (:meth:`SimCharger201.send_raw`).
It keeps what a station keeps: a ``seqNo`` per station counting every TransactionEvent, its own
string transaction ids (a fresh UUID per session), a device model of variables
(``GetVariables``/``SetVariables``), and answers to ``RequestStartTransaction`` (a session is
started, its ``remoteStartId`` carried), ``RequestStopTransaction``, ``Reset``,
``TriggerMessage`` and ``GetBaseReport`` (Accepted, then its device model in ``NotifyReport``
parts of ``report_part_size`` entries: ``report_data`` when given, else its variables). Any
other call the CSMS sends is answered ``NotImplemented``, or from ``handlers`` (action →
payload function) when a test gives one.

``sent`` and ``received`` hold every raw frame in each direction, in order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.headers import build_authorization_basic
from websockets.typing import Subprotocol

from edgegw.sim import JsonDict, SimCallError, utc_timestamp
from edgegw.sim.lifecycle import ConnectedSim
from edgegw.tasks import TaskOwner

log = logging.getLogger(__name__)

OCPP201 = "ocpp2.0.1"

Handler = Callable[[JsonDict], JsonDict]
"""Answers one CSMS call: its payload → the CALLRESULT payload."""


@dataclass(slots=True)
class Transaction201:
    """A session the station runs on one EVSE."""

    transaction_id: str
    evse: int
    connector: int = 1
    id_token: JsonDict | None = None
    energy_wh: float = 0.0
    remote_start_id: int | None = None


@dataclass(slots=True)
class _Pending:
    action: str
    future: asyncio.Future[JsonDict] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SimCharger201(ConnectedSim):
    """One simulated OCPP 2.0.1 station connecting to ``<url>/<charger_id>``.

    ``subprotocols`` are offered in that order (default: ``ocpp2.0.1`` only). :meth:`call`
    returns the CALLRESULT payload and raises :class:`~edgegw.sim.SimCallError` on a CALLERROR.
    """

    def __init__(
        self,
        charger_id: str,
        url: str,
        *,
        password: str | None = None,
        subprotocols: Sequence[str] = (OCPP201,),
        handlers: Mapping[str, Handler] | None = None,
        variables: Mapping[tuple[str, str], str] | None = None,
        clock: Callable[[], float] | None = None,
        call_timeout: float = 10.0,
        report_data: Sequence[JsonDict] | None = None,
        report_part_size: int = 4,
    ) -> None:
        self.charger_id = charger_id
        self.url = url
        self.password = password
        self.subprotocols = tuple(subprotocols)
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.variables: dict[tuple[str, str], str] = dict(
            variables
            or {
                ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
                ("SampledDataCtrlr", "TxUpdatedInterval"): "60",
            }
        )
        self.call_timeout = call_timeout
        self.report_data = None if report_data is None else list(report_data)
        self.report_part_size = report_part_size
        self.sent: list[str] = []
        self.received: list[str] = []
        self.calls_received: list[tuple[str, JsonDict]] = []
        self.transactions: dict[int, Transaction201] = {}
        self.seq_no = 0
        self.subprotocol: str | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._clock = clock
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._ws: ClientConnection | None = None
        self._owner: TaskOwner | None = None
        self._closed = asyncio.Event()

    # ------------------------------------------------------------------ connection

    async def connect(self) -> None:
        """Open the WebSocket (a refused handshake raises websockets' ``InvalidStatus``)."""
        headers = {}
        if self.password is not None:
            headers["Authorization"] = build_authorization_basic(self.charger_id, self.password)
        target = self.url.rstrip("/") + "/" + quote(self.charger_id, safe="")
        ws = await connect(
            target,
            subprotocols=[Subprotocol(p) for p in self.subprotocols],
            additional_headers=headers,
            open_timeout=10,
            proxy=None,
        )
        self.subprotocol = ws.subprotocol
        self.close_code = None
        self.close_reason = None
        self._closed = asyncio.Event()
        self._ws = ws
        self._owner = TaskOwner(f"sim-charger201/{self.charger_id}")
        self._owner.spawn(self._read(ws), "read")

    async def close(self) -> None:
        # The socket closes first: a call arriving meanwhile is answered, or meets a closed
        # socket in _answer, never a station that forgot its socket under its read task.
        ws, owner = self._ws, self._owner
        if ws is not None:
            await ws.close()
        if owner is not None:
            await owner.close()
        if self._ws is ws:
            self._ws = None
            self._owner = None
        self._closed.set()

    async def wait_closed(self, timeout: float | None = None) -> int | None:
        """Wait until the connection is gone; return the close code (reason: ``close_reason``)."""
        async with asyncio.timeout(timeout):
            await self._closed.wait()
        return self.close_code

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                self.received.append(text)
                await self._on_frame(text)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            self.close_reason = ws.close_reason
            for pending in self._pending.values():
                if not pending.future.done():
                    pending.future.set_exception(ConnectionError("connection closed"))
            self._pending.clear()
            self._closed.set()

    async def _on_frame(self, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            return
        if not isinstance(frame, list) or len(frame) < 3:
            return
        kind, message_id = frame[0], frame[1]
        if kind == 2 and len(frame) == 4:
            await self._answer(str(message_id), str(frame[2]), frame[3])
            return
        pending = self._pending.pop(str(message_id), None)
        if pending is None or pending.future.done():
            return
        if kind == 3:
            pending.future.set_result(frame[2] if isinstance(frame[2], dict) else {})
        elif kind == 4 and len(frame) >= 4:
            details = frame[4] if len(frame) > 4 and isinstance(frame[4], dict) else {}
            pending.future.set_exception(SimCallError(str(frame[2]), str(frame[3]), details))

    async def _answer(self, message_id: str, action: str, payload: Any) -> None:
        request = payload if isinstance(payload, dict) else {}
        self.calls_received.append((action, request))
        handler = self.handlers.get(action) or self._own_handlers().get(action)
        if handler is None:
            frame = [4, message_id, "NotImplemented", f"{action} not implemented", {}]
        else:
            frame = [3, message_id, handler(request)]
        try:
            await self.send_raw(json.dumps(frame))
        except (ConnectionError, ConnectionClosed):  # closing: the CSMS gets no answer
            log.info("sim charger %s: %s not answered, closing", self.charger_id, action)

    # ------------------------------------------------------------------ outgoing

    async def send_raw(self, text: str) -> None:
        """Send exactly ``text`` (recorded in ``sent``)."""
        ws = self._ws
        if ws is None:
            raise ConnectionError(f"sim charger {self.charger_id} is not connected")
        self.sent.append(text)
        await ws.send(text)

    async def call(
        self, action: str, payload: Mapping[str, Any], *, raw: str | None = None
    ) -> JsonDict:
        """Send a CALL and return its CALLRESULT payload. ``raw``: the exact frame text to send
        (its message id must be the one returned by :meth:`next_id`)."""
        message_id = json.loads(raw)[1] if raw is not None else self.next_id()
        pending = _Pending(action)
        self._pending[message_id] = pending
        await self.send_raw(
            raw if raw is not None else json.dumps([2, message_id, action, payload])
        )
        async with asyncio.timeout(self.call_timeout):
            return await pending.future

    def next_id(self) -> str:
        return f"sim201-{next(self._ids)}"

    def now(self) -> str:
        return utc_timestamp(self._clock() if self._clock is not None else time.time())

    async def boot(self, reason: str = "PowerUp") -> JsonDict:
        station = {"model": "Sim201", "vendorName": "edgegw", "serialNumber": self.charger_id}
        return await self.call("BootNotification", {"reason": reason, "chargingStation": station})

    async def heartbeat(self) -> JsonDict:
        return await self.call("Heartbeat", {})

    async def status(self, evse: int, status: str, connector: int = 1) -> JsonDict:
        return await self.call(
            "StatusNotification",
            {
                "timestamp": self.now(),
                "connectorStatus": status,
                "evseId": evse,
                "connectorId": connector,
            },
        )

    async def authorize(self, token: str, id_type: str = "ISO14443") -> JsonDict:
        return await self.call("Authorize", {"idToken": {"idToken": token, "type": id_type}})

    async def start(
        self,
        evse: int,
        token: str | None = None,
        id_type: str = "ISO14443",
        *,
        trigger: str = "Authorized",
        remote_start_id: int | None = None,
    ) -> tuple[Transaction201, JsonDict]:
        """Start a session on ``evse``: TransactionEvent Started (returns it and the answer)."""
        tx = Transaction201(
            transaction_id=str(uuid.uuid4()),
            evse=evse,
            id_token=None if token is None else {"idToken": token, "type": id_type},
            remote_start_id=remote_start_id,
        )
        self.transactions[evse] = tx
        answer = await self.transaction_event(tx, "Started", trigger, charging_state="EVConnected")
        return tx, answer

    async def meter(self, evse: int, current_a: float, energy_wh: float) -> JsonDict:
        """A TransactionEvent Updated with per-phase currents and the energy register."""
        tx = self.transactions[evse]
        tx.energy_wh = energy_wh
        sampled = [
            {
                "value": current_a,
                "measurand": "Current.Import",
                "phase": phase,
                "unitOfMeasure": {"unit": "A"},
            }
            for phase in ("L1", "L2", "L3")
        ]
        sampled.append(
            {
                "value": energy_wh / 1000,
                "measurand": "Energy.Active.Import.Register",
                "unitOfMeasure": {"unit": "kWh"},
            }
        )
        return await self.transaction_event(
            tx,
            "Updated",
            "MeterValuePeriodic",
            charging_state="Charging",
            meter=[{"timestamp": self.now(), "sampledValue": sampled}],
        )

    async def stop(self, evse: int, reason: str = "EVDisconnected") -> JsonDict:
        tx = self.transactions.pop(evse)
        meter = [
            {
                "timestamp": self.now(),
                "sampledValue": [
                    {
                        "value": tx.energy_wh,
                        "context": "Transaction.End",
                        "unitOfMeasure": {"unit": "Wh"},
                    }
                ],
            }
        ]
        return await self.transaction_event(
            tx, "Ended", "EVCommunicationLost", stopped_reason=reason, meter=meter
        )

    async def transaction_event(
        self,
        tx: Transaction201,
        event_type: str,
        trigger: str,
        *,
        charging_state: str | None = None,
        stopped_reason: str | None = None,
        meter: list[JsonDict] | None = None,
    ) -> JsonDict:
        info: JsonDict = {"transactionId": tx.transaction_id}
        if charging_state is not None:
            info["chargingState"] = charging_state
        if stopped_reason is not None:
            info["stoppedReason"] = stopped_reason
        if tx.remote_start_id is not None and event_type == "Started":
            info["remoteStartId"] = tx.remote_start_id
        payload: JsonDict = {
            "eventType": event_type,
            "timestamp": self.now(),
            "triggerReason": trigger,
            "seqNo": self.seq_no,
            "transactionInfo": info,
            "evse": {"id": tx.evse, "connectorId": tx.connector},
        }
        self.seq_no += 1
        if tx.id_token is not None and event_type == "Started":
            payload["idToken"] = tx.id_token
        if meter is not None:
            payload["meterValue"] = meter
        return await self.call("TransactionEvent", payload)

    # ------------------------------------------------------------------ the CSMS's calls

    def _own_handlers(self) -> dict[str, Handler]:
        return {
            "GetVariables": self._get_variables,
            "SetVariables": self._set_variables,
            "RequestStartTransaction": self._request_start,
            "RequestStopTransaction": self._request_stop,
            "Reset": lambda _p: {"status": "Accepted"},
            "GetBaseReport": self._base_report,
            "TriggerMessage": lambda _p: {"status": "Accepted"},
        }

    def device_model(self) -> list[JsonDict]:
        """The report entries of GetBaseReport: ``report_data`` when given, else one entry per
        variable (its value as the ``Actual`` attribute)."""
        if self.report_data is not None:
            return list(self.report_data)
        return [
            {
                "component": {"name": component},
                "variable": {"name": variable},
                "variableAttribute": [{"type": "Actual", "value": value}],
            }
            for (component, variable), value in self.variables.items()
        ]

    def _base_report(self, payload: JsonDict) -> JsonDict:
        """Accepted, then the device model in NotifyReport parts of ``report_part_size``
        entries (sent after the answer, as a station does)."""
        request_id = payload.get("requestId")
        if not isinstance(request_id, int) or self._owner is None:
            return {"status": "Rejected"}
        self._owner.spawn(self._notify_report(request_id), f"report:{request_id}")
        return {"status": "Accepted"}

    async def _notify_report(self, request_id: int) -> None:
        entries = self.device_model()
        size = max(1, self.report_part_size)
        chunks = [entries[i : i + size] for i in range(0, len(entries), size)] or [[]]
        try:
            for seq, chunk in enumerate(chunks):
                part: JsonDict = {
                    "requestId": request_id,
                    "generatedAt": self.now(),
                    "seqNo": seq,
                    "tbc": seq < len(chunks) - 1,
                }
                if chunk:
                    part["reportData"] = chunk
                try:
                    await self.call("NotifyReport", part)
                except SimCallError as exc:  # as stations do: the next part all the same
                    log.info("sim charger %s: report part %d: %s", self.charger_id, seq, exc)
        except (ConnectionError, TimeoutError) as exc:
            log.info("sim charger %s: report %d cut short: %s", self.charger_id, request_id, exc)

    def _get_variables(self, payload: JsonDict) -> JsonDict:
        results = []
        for item in payload.get("getVariableData", []):
            component = item.get("component", {}).get("name", "")
            variable = item.get("variable", {}).get("name", "")
            value = self.variables.get((component, variable))
            result: JsonDict = {
                "attributeStatus": "Accepted" if value is not None else "UnknownVariable",
                "component": item.get("component", {}),
                "variable": item.get("variable", {}),
            }
            if value is not None:
                result["attributeValue"] = value
            results.append(result)
        return {"getVariableResult": results}

    def _set_variables(self, payload: JsonDict) -> JsonDict:
        results = []
        for item in payload.get("setVariableData", []):
            component = item.get("component", {}).get("name", "")
            variable = item.get("variable", {}).get("name", "")
            known = (component, variable) in self.variables
            if known:
                self.variables[component, variable] = str(item.get("attributeValue", ""))
            results.append(
                {
                    "attributeStatus": "Accepted" if known else "UnknownVariable",
                    "component": item.get("component", {}),
                    "variable": item.get("variable", {}),
                }
            )
        return {"setVariableResult": results}

    def _request_start(self, payload: JsonDict) -> JsonDict:
        evse = payload.get("evseId", 1)
        if not isinstance(evse, int) or evse in self.transactions:
            return {"status": "Rejected"}
        token = payload.get("idToken", {})
        remote_id = payload.get("remoteStartId")
        if self._owner is not None:  # the session starts after the answer, as on a station
            self._owner.spawn(self._remote_session(evse, token, remote_id), f"remote-start:{evse}")
        return {"status": "Accepted"}

    async def _remote_session(self, evse: int, token: JsonDict, remote_id: Any) -> None:
        try:
            await self.start(
                evse,
                token.get("idToken"),
                token.get("type", "Central"),
                trigger="RemoteStart",
                remote_start_id=remote_id if isinstance(remote_id, int) else None,
            )
        except (ConnectionError, TimeoutError) as exc:  # cut off: a station sends it again
            log.info(
                "sim charger %s: remote start on EVSE %d not answered: %s",
                self.charger_id,
                evse,
                exc,
            )

    def _request_stop(self, payload: JsonDict) -> JsonDict:
        wanted = payload.get("transactionId")
        for tx in self.transactions.values():
            if tx.transaction_id == wanted:
                return {"status": "Accepted"}
        return {"status": "Rejected"}
