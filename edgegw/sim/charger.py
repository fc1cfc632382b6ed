"""A simulated OCPP 1.6J charge point (WebSocket client).

The gateway's tests need a charger that does what real ones do on the wire (tap a card,
Authorize, StartTransaction, per-phase MeterValues, StopTransaction with a reason) and that
answers everything a CSMS or the gateway may ask, including smart charging: the current a
session draws follows the charging profiles it was given, so a load-capping test can check
that the site cap really took effect. ``ignore_profiles=True`` makes a charger that accepts
profiles and ignores them, as some do in the field.

The model is deliberately simple and deterministic: the car draws
``min(car_current_a, limit)`` A on each of ``phases`` phases, where ``limit`` is the lowest of
``max_current_a``, the TxProfile (or else TxDefaultProfile) and the ChargePointMaxProfile
(shared equally by the sessions running), each taken at the period in effect now; energy
accrues with ``clock`` at 230 V per phase. Tests pass a fake ``clock`` to make energy exact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from ssl import SSLContext
from typing import Any, Literal
from urllib.parse import quote

from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.headers import build_authorization_basic
from websockets.typing import Subprotocol

from edgegw.sim import (
    NOMINAL_VOLTAGE,
    OCPP16,
    Frame,
    FrameTap,
    JsonDict,
    OcppPeer,
    SimCallError,
    Waiters,
    ocpp_error,
    parse_timestamp,
    route,
    route_after,
    utc_timestamp,
)
from edgegw.sim.lifecycle import ConnectedSim
from edgegw.tasks import TaskOwner

__all__ = [
    "SUPPORTED_MEASURANDS",
    "ChargingProfile",
    "ConfigKey",
    "Reservation",
    "SchedulePeriod",
    "SimCharger",
    "SimSession",
]

log = logging.getLogger(__name__)

SUPPORTED_MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Current.Offered",
    "Power.Offered",
    "Voltage",
)
_DEFAULT_MEASURANDS = (
    "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Current.Offered"
)
_RECURRENCE_SECONDS = {"Daily": 86_400.0, "Weekly": 604_800.0}
_TRIGGERABLE = {
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StatusNotification",
}

Followup = Callable[[], Coroutine[Any, Any, Any]]
Responder = Callable[[JsonDict], tuple[JsonDict, Followup | None]]


# ---------------------------------------------------------------------- data


@dataclasses.dataclass(slots=True)
class SimSession:
    """A transaction running on one connector."""

    connector_id: int
    transaction_id: int
    id_tag: str
    meter_start: int
    started_at: float
    id_tag_status: str
    reservation_id: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: int
    connector_id: int
    id_tag: str
    expiry_date: str
    parent_id_tag: str | None = None


@dataclasses.dataclass(slots=True)
class ConfigKey:
    """One configuration key: its value as OCPP carries it (a string) and whether it is R/O."""

    value: str
    readonly: bool = False
    kind: Literal["int", "bool", "str", "measurands"] = "str"


@dataclasses.dataclass(frozen=True, slots=True)
class SchedulePeriod:
    start: float
    limit: float
    number_phases: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ChargingProfile:
    """An installed ``csChargingProfiles`` with its times parsed to POSIX seconds."""

    connector_id: int
    profile_id: int
    stack_level: int
    purpose: str
    kind: str
    recurrency: str | None
    valid_from: float | None
    valid_to: float | None
    transaction_id: int | None
    start_schedule: float | None
    duration: float | None
    unit: str
    periods: tuple[SchedulePeriod, ...]
    raw: JsonDict

    @classmethod
    def from_ocpp(cls, connector_id: int, data: Mapping[str, Any]) -> ChargingProfile:
        schedule = data["chargingSchedule"]
        periods = sorted(
            (
                SchedulePeriod(float(p["startPeriod"]), float(p["limit"]), p.get("numberPhases"))
                for p in schedule["chargingSchedulePeriod"]
            ),
            key=lambda p: p.start,
        )
        return cls(
            connector_id=connector_id,
            profile_id=int(data["chargingProfileId"]),
            stack_level=int(data["stackLevel"]),
            purpose=str(data["chargingProfilePurpose"]),
            kind=str(data["chargingProfileKind"]),
            recurrency=data.get("recurrencyKind"),
            valid_from=_opt_time(data.get("validFrom")),
            valid_to=_opt_time(data.get("validTo")),
            transaction_id=data.get("transactionId"),
            start_schedule=_opt_time(schedule.get("startSchedule")),
            duration=None if schedule.get("duration") is None else float(schedule["duration"]),
            unit=str(schedule["chargingRateUnit"]),
            periods=tuple(periods),
            raw=dict(data),
        )

    def _origin(self, tx_start: float) -> float:
        if self.kind == "Relative":
            return tx_start
        return self.start_schedule if self.start_schedule is not None else tx_start

    def limit_at(self, t: float, tx_start: float, phases: int) -> float | None:
        """Amps per phase this profile allows at ``t``, or None when it is not in effect.

        ``tx_start`` anchors Relative schedules (and Absolute ones without startSchedule).
        A W limit is converted at 230 V over the period's numberPhases, else ``phases``.
        """
        if self.valid_from is not None and t < self.valid_from:
            return None
        if self.valid_to is not None and t >= self.valid_to:
            return None
        elapsed = t - self._origin(tx_start)
        if elapsed < 0:
            return None
        if self.kind == "Recurring":
            elapsed %= _RECURRENCE_SECONDS.get(self.recurrency or "Daily", 86_400.0)
        if self.duration is not None and elapsed >= self.duration:
            return None
        current: SchedulePeriod | None = None
        for period in self.periods:
            if period.start > elapsed:
                break
            current = period
        if current is None:
            return None
        if self.unit == "W":
            return current.limit / (NOMINAL_VOLTAGE * (current.number_phases or phases))
        return current.limit

    def boundaries(self, t0: float, t1: float, tx_start: float) -> set[float]:
        """Times in ``(t0, t1)`` at which this profile's limit may change."""
        origin = self._origin(tx_start)
        offsets = [p.start for p in self.periods]
        if self.duration is not None:
            offsets.append(self.duration)
        bases = [origin]
        if self.kind == "Recurring":
            step = _RECURRENCE_SECONDS.get(self.recurrency or "Daily", 86_400.0)
            first = math.floor((t0 - origin) / step)
            last = math.ceil((t1 - origin) / step)
            bases = [origin + k * step for k in range(max(first, 0), last + 1)]
        times = {b + o for b in bases for o in offsets}
        times.update(x for x in (self.valid_from, self.valid_to) if x is not None)
        return {t for t in times if t0 < t < t1}


@dataclasses.dataclass(slots=True)
class _Connector:
    connector_id: int
    status: str = "Available"
    operative: bool = True
    pending_operative: bool | None = None
    register_wh: float = 0.0
    last_accrual: float = 0.0
    session: SimSession | None = None
    claimed: bool = False
    reservation: Reservation | None = None


def _opt_time(value: Any) -> float | None:
    return None if value is None else parse_timestamp(str(value))


class _ChargerPeer(OcppPeer):
    """The charger's end of the connection; every answer comes from SimCharger."""

    on_cancel_reservation = route(Action.cancel_reservation)
    on_change_availability = route(Action.change_availability)
    on_change_configuration = route(Action.change_configuration)
    on_clear_cache = route(Action.clear_cache)
    on_clear_charging_profile = route(Action.clear_charging_profile)
    on_data_transfer = route(Action.data_transfer)
    on_get_composite_schedule = route(Action.get_composite_schedule)
    on_get_configuration = route(Action.get_configuration)
    on_get_diagnostics = route(Action.get_diagnostics)
    on_get_local_list_version = route(Action.get_local_list_version)
    on_remote_start_transaction = route(Action.remote_start_transaction)
    on_remote_stop_transaction = route(Action.remote_stop_transaction)
    on_reserve_now = route(Action.reserve_now)
    on_reset = route(Action.reset)
    on_send_local_list = route(Action.send_local_list)
    on_set_charging_profile = route(Action.set_charging_profile)
    on_trigger_message = route(Action.trigger_message)
    on_unlock_connector = route(Action.unlock_connector)
    on_update_firmware = route(Action.update_firmware)

    after_cancel_reservation = route_after(Action.cancel_reservation)
    after_change_availability = route_after(Action.change_availability)
    after_clear_charging_profile = route_after(Action.clear_charging_profile)
    after_get_diagnostics = route_after(Action.get_diagnostics)
    after_remote_start_transaction = route_after(Action.remote_start_transaction)
    after_remote_stop_transaction = route_after(Action.remote_stop_transaction)
    after_reserve_now = route_after(Action.reserve_now)
    after_reset = route_after(Action.reset)
    after_set_charging_profile = route_after(Action.set_charging_profile)
    after_trigger_message = route_after(Action.trigger_message)
    after_unlock_connector = route_after(Action.unlock_connector)
    after_update_firmware = route_after(Action.update_firmware)


# ---------------------------------------------------------------------- charger


class SimCharger(ConnectedSim):
    """One simulated charge point connecting to ``<url>/<charger_id>`` with ``ocpp1.6``.

    Outgoing calls return the CALLRESULT payload (camelCase dict) and raise
    :class:`~edgegw.sim.SimCallError` on CALLERROR. Incoming calls are answered from the
    charger's state; follow-up messages (a remote start's StartTransaction, a triggered
    message, firmware progress...) are sent by owned tasks after the answer.
    ``received`` lists the ``(action, payload)`` of every CALL received and answered;
    ``sent`` every raw frame sent. ``history`` bounds both for long runs. For a ``wss://``
    url, ``ssl`` is the client context (trusted CA, and a client certificate for Security
    Profile 3).
    """

    def __init__(
        self,
        charger_id: str,
        url: str,
        *,
        password: str | None = None,
        connectors: int = 2,
        vendor: str = "edgegw-sim",
        model: str = "SimCharger",
        phases: int = 3,
        max_current_a: float = 32.0,
        car_current_a: float = 16.0,
        clock: Callable[[], float] = time.time,
        ignore_profiles: bool = False,
        call_timeout: float = 30.0,
        history: int | None = None,
        ssl: SSLContext | None = None,
    ) -> None:
        if connectors < 1:
            raise ValueError("a charger needs at least one connector")
        if phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, not {phases}")
        self.charger_id = charger_id
        self.url = url
        self.password = password
        self.vendor = vendor
        self.model = model
        self.phases = phases
        self.max_current_a = max_current_a
        self.car_current_a = car_current_a
        self.ignore_profiles = ignore_profiles
        self.call_timeout = call_timeout
        self.history = history
        self.ssl = ssl
        self._clock = clock
        self.connectors = connectors
        self._connectors = {c: _Connector(c) for c in range(1, connectors + 1)}
        self.profiles: list[ChargingProfile] = []
        self.config: dict[str, ConfigKey] = _default_config(connectors)
        self.local_list: dict[str, JsonDict] = {}  # idTag (casefolded) -> idTagInfo
        self.local_list_version = 0
        self.auth_cache: dict[str, JsonDict] = {}  # idTag (casefolded) -> idTagInfo
        self.firmware_state = "Idle"
        self.diagnostics_state = "Idle"
        self.boot_status: str | None = None
        self.received: list[tuple[str, JsonDict]] = []
        self.sent: list[str] = []
        self.frames_sent = 0
        self.close_code: int | None = None
        self._ws: ClientConnection | None = None
        self._peer: _ChargerPeer | None = None
        self._owner: TaskOwner | None = None
        self._closed = asyncio.Event()
        self._closed.set()
        self._followup: Followup | None = None
        self._call_waiters: Waiters[tuple[str, JsonDict]] = Waiters()
        self._responders: dict[str, Responder] = {
            "CancelReservation": self._on_cancel_reservation,
            "ChangeAvailability": self._on_change_availability,
            "ChangeConfiguration": self._on_change_configuration,
            "ClearCache": self._on_clear_cache,
            "ClearChargingProfile": self._on_clear_charging_profile,
            "DataTransfer": self._on_data_transfer,
            "GetCompositeSchedule": self._on_get_composite_schedule,
            "GetConfiguration": self._on_get_configuration,
            "GetDiagnostics": self._on_get_diagnostics,
            "GetLocalListVersion": self._on_get_local_list_version,
            "RemoteStartTransaction": self._on_remote_start,
            "RemoteStopTransaction": self._on_remote_stop,
            "ReserveNow": self._on_reserve_now,
            "Reset": self._on_reset,
            "SendLocalList": self._on_send_local_list,
            "SetChargingProfile": self._on_set_charging_profile,
            "TriggerMessage": self._on_trigger_message,
            "UnlockConnector": self._on_unlock_connector,
            "UpdateFirmware": self._on_update_firmware,
        }

    # ------------------------------------------------------------------ connection

    async def connect(self) -> None:
        """Open the WebSocket; a refused handshake raises websockets' ``InvalidStatus``.

        ``InvalidStatus.response.status_code`` is the HTTP status (401, 404...).
        """
        if self.connected:
            raise RuntimeError(f"{self.charger_id} is already connected")
        headers = {}
        if self.password is not None:
            headers["Authorization"] = build_authorization_basic(self.charger_id, self.password)
        target = self.url.rstrip("/") + "/" + quote(self.charger_id, safe="")
        tls: dict[str, Any] = {} if self.ssl is None else {"ssl": self.ssl}
        ws = await connect(
            target,
            subprotocols=[Subprotocol(OCPP16)],
            additional_headers=headers,
            open_timeout=10,
            **tls,  # for wss:// without a context, websockets uses the system CAs
        )
        if ws.subprotocol != OCPP16:
            await ws.close(1002, "ocpp1.6 not negotiated")
            raise ConnectionError(f"{target} did not accept subprotocol {OCPP16}")
        if self._owner is not None:  # a previous connection the server closed
            await self._owner.close()
        for conn in self._connectors.values():
            conn.claimed = False  # a remote start cut off by the old connection
        self.close_code = None
        self._closed = asyncio.Event()
        self._ws = ws
        self._owner = TaskOwner(f"sim-charger/{self.charger_id}")

        def on_frame(frame: Frame) -> None:
            self._on_frame(tap, frame)

        tap = FrameTap(ws, on_frame)
        self._peer = _ChargerPeer(self.charger_id, tap, self._answer, self._after)
        self._owner.spawn(self._serve(self._peer, ws, self._closed), "serve")
        log.debug("sim charger %s connected to %s", self.charger_id, target)

    async def _serve(self, peer: _ChargerPeer, ws: ClientConnection, closed: asyncio.Event) -> None:
        try:
            await peer.serve()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            closed.set()
            if self._ws is ws:
                self._ws = None
                self._peer = None
            log.debug("sim charger %s connection closed (%s)", self.charger_id, ws.close_code)

    async def close(self) -> None:
        """Close the connection (if open) and end every task this charger owns."""
        ws, owner = self._ws, self._owner
        self._owner = None
        if ws is not None:
            await ws.close()
        if owner is not None:
            await owner.close()
        self._ws = None
        self._peer = None
        self._closed.set()

    async def wait_closed(self, timeout: float | None = None) -> int | None:
        """Wait until the connection is gone; return the close code."""
        async with asyncio.timeout(timeout):
            await self._closed.wait()
        return self.close_code

    def _on_frame(self, tap: FrameTap, frame: Frame) -> None:
        if frame.direction == "in":
            return
        self.frames_sent += 1
        self.sent.append(frame.raw)
        if frame.message_type in (3, 4) and frame.action is not None:
            payload = tap.call_payload(frame.message_id)
            item = (frame.action, payload if isinstance(payload, dict) else {})
            self.received.append(item)
            self._call_waiters.notify(item)
        if self.history is not None:
            for records in (self.sent, self.received):
                if len(records) > 2 * self.history:
                    del records[: len(records) - self.history]

    async def wait_call(
        self,
        action: str,
        predicate: Callable[[JsonDict], bool] | None = None,
        timeout: float = 5,
    ) -> JsonDict:
        """Payload of the first CALL ``action`` received and answered (past or future)."""
        item = await self._call_waiters.wait(
            lambda it: it[0] == action and (predicate is None or predicate(it[1])),
            list(self.received),
            timeout,
            f"{self.charger_id} to receive {action}",
        )
        return item[1]

    # ------------------------------------------------------------------ outgoing calls

    async def call(
        self,
        action: str,
        payload: Mapping[str, Any],
        *,
        timeout: float | None = None,
        validate: bool = True,
    ) -> JsonDict:
        """Send any charger-to-CSMS CALL (camelCase payload) and return the CALLRESULT payload."""
        peer = self._peer
        if peer is None or not self.connected:
            raise ConnectionError(f"sim charger {self.charger_id} is not connected")
        return await peer.send_call(
            action, payload, timeout=timeout or self.call_timeout, validate=validate
        )

    async def boot(self) -> JsonDict:
        result = await self.call(
            "BootNotification",
            {
                "chargePointVendor": self.vendor,
                "chargePointModel": self.model,
                "chargePointSerialNumber": self.charger_id[:25],
                "firmwareVersion": "sim-1.0",
            },
        )
        self.boot_status = str(result["status"])
        if self.boot_status == "Accepted" and int(result.get("interval", 0)) > 0:
            self.config["HeartbeatInterval"].value = str(int(result["interval"]))
        return result

    async def heartbeat(self) -> JsonDict:
        return await self.call("Heartbeat", {})

    async def status(
        self, connector: int, status: str, error_code: str = "NoError", **extra: Any
    ) -> JsonDict:
        """StatusNotification; ``extra`` adds optional fields (``info``, ``vendorErrorCode``)."""
        if connector in self._connectors:
            self._connectors[connector].status = status
        payload = {
            "connectorId": connector,
            "errorCode": error_code,
            "status": status,
            "timestamp": self._now_text(),
            **extra,
        }
        return await self.call("StatusNotification", payload)

    async def authorize(self, id_tag: str) -> JsonDict:
        result = await self.call("Authorize", {"idTag": id_tag})
        self.auth_cache[id_tag.casefold()] = dict(result["idTagInfo"])
        return result

    async def start_transaction(self, connector: int, id_tag: str) -> int:
        """StartTransaction on ``connector``; the session runs even if the tag is refused."""
        conn = self._connector(connector)
        if conn.session is not None:
            raise RuntimeError(f"connector {connector} already has a transaction")
        self._accrue()
        payload: JsonDict = {
            "connectorId": connector,
            "idTag": id_tag,
            "meterStart": math.floor(conn.register_wh),
            "timestamp": self._now_text(),
        }
        reservation = conn.reservation
        if reservation is not None and _same_tag(reservation.id_tag, id_tag):
            payload["reservationId"] = reservation.reservation_id
            conn.reservation = None
        was_claimed, conn.claimed = conn.claimed, True  # no RemoteStart while we wait
        try:
            result = await self.call("StartTransaction", payload)
        finally:
            conn.claimed = was_claimed
        info = dict(result["idTagInfo"])
        self.auth_cache[id_tag.casefold()] = info
        self._accrue()
        conn.session = SimSession(
            connector_id=connector,
            transaction_id=int(result["transactionId"]),
            id_tag=id_tag,
            meter_start=int(payload["meterStart"]),
            started_at=self._clock(),
            id_tag_status=str(info["status"]),
            reservation_id=payload.get("reservationId"),
        )
        conn.last_accrual = self._clock()
        return conn.session.transaction_id

    async def meter_values(self, connector: int, context: str = "Sample.Periodic") -> JsonDict:
        """MeterValues with the measurands of ``MeterValuesSampledData`` (per phase for
        currents), and the transaction id when a session runs on ``connector``."""
        conn = self._connector(connector)
        self._accrue()
        payload: JsonDict = {
            "connectorId": connector,
            "meterValue": [
                {"timestamp": self._now_text(), "sampledValue": self._sampled(connector, context)}
            ],
        }
        if conn.session is not None:
            payload["transactionId"] = conn.session.transaction_id
        return await self.call("MeterValues", payload)

    async def stop_transaction(self, connector: int, reason: str = "Local") -> JsonDict:
        """StopTransaction for the session on ``connector`` (only the message; see end_session)."""
        conn = self._connector(connector)
        session = conn.session
        if session is None:
            raise RuntimeError(f"connector {connector} has no transaction to stop")
        self._accrue()
        conn.session = None
        self.profiles = [
            p
            for p in self.profiles
            if not (p.purpose == "TxProfile" and p.connector_id == connector)
        ]
        payload = {
            "transactionId": session.transaction_id,
            "idTag": session.id_tag,
            "meterStop": math.floor(conn.register_wh),
            "timestamp": self._now_text(),
            "reason": reason,
        }
        return await self.call("StopTransaction", payload)

    async def data_transfer(
        self, vendor_id: str, data: str | None = None, message_id: str | None = None
    ) -> JsonDict:
        payload: JsonDict = {"vendorId": vendor_id}
        if message_id is not None:
            payload["messageId"] = message_id
        if data is not None:
            payload["data"] = data
        return await self.call("DataTransfer", payload)

    async def firmware_status(self, status: str) -> JsonDict:
        self.firmware_state = status
        return await self.call("FirmwareStatusNotification", {"status": status})

    async def diagnostics_status(self, status: str) -> JsonDict:
        self.diagnostics_state = status
        return await self.call("DiagnosticsStatusNotification", {"status": status})

    # ------------------------------------------------------------------ driver actions

    async def tap(self, id_tag: str, connector: int = 1) -> int | None:
        """A driver taps a card: Authorize; if Accepted, Preparing, StartTransaction, Charging.

        Returns the transaction id, or None when the card is refused (by Authorize, by
        StartTransaction, which then stops the session with reason DeAuthorized, or locally
        because the connector is busy, inoperative or reserved for another card).
        """
        conn = self._connector(connector)
        if conn.session is not None or conn.claimed or not conn.operative:
            return None
        if conn.reservation is not None and not _same_tag(conn.reservation.id_tag, id_tag):
            return None
        conn.claimed = True
        try:
            result = await self.authorize(id_tag)
            if result["idTagInfo"]["status"] != "Accepted":
                return None
            return await self._begin_session(connector, id_tag)
        finally:
            conn.claimed = False

    async def end_session(self, connector: int, reason: str = "Local") -> JsonDict:
        """StopTransaction, then Finishing and Available (or Unavailable/Reserved)."""
        result = await self.stop_transaction(connector, reason)
        await self.status(connector, "Finishing")
        conn = self._connector(connector)
        if conn.pending_operative is not None:
            conn.operative, conn.pending_operative = conn.pending_operative, None
        await self.status(connector, self._idle_status(conn))
        return result

    async def run_session(
        self, id_tag: str, connector: int = 1, *, meter_interval: float, samples: int
    ) -> int | None:
        """Tap, send ``samples`` MeterValues ``meter_interval`` seconds apart, then stop."""
        tx = await self.tap(id_tag, connector)
        if tx is None:
            return None
        for _ in range(samples):
            await asyncio.sleep(meter_interval)  # simulated time between samples
            if self._connector(connector).session is None:
                return tx  # stopped meanwhile (remote stop, reset, unlock)
            await self.meter_values(connector)
        if self._connector(connector).session is not None:
            await self.end_session(connector, "Local")
        return tx

    async def _begin_session(
        self, connector: int, id_tag: str, tx_profile: Mapping[str, Any] | None = None
    ) -> int | None:
        await self.status(connector, "Preparing")
        tx = await self.start_transaction(connector, id_tag)
        if tx_profile is not None:  # from RemoteStartTransaction: applies from the first amp
            self._install(connector, {**tx_profile, "transactionId": tx})
        session = self._connector(connector).session
        refused = session is not None and session.id_tag_status != "Accepted"
        if refused and self.config["StopTransactionOnInvalidId"].value.lower() == "true":
            await self.end_session(connector, "DeAuthorized")
            return None
        await self.status(connector, self._charging_status(connector))
        return tx

    # ------------------------------------------------------------------ charging model

    def session(self, connector: int) -> SimSession | None:
        return self._connector(connector).session

    def status_of(self, connector: int) -> str:
        return self._connector(connector).status

    def is_free(self, connector: int) -> bool:
        """True when a driver could start charging on ``connector`` now."""
        conn = self._connector(connector)
        return (
            conn.operative
            and conn.session is None
            and not conn.claimed
            and conn.reservation is None
        )

    def energy_wh(self, connector: int) -> float:
        """The connector's energy register (monotonic, never reset per transaction)."""
        self._accrue()
        return self._connector(connector).register_wh

    def offered_a(self, connector: int) -> float:
        """Amps per phase the charger offers on ``connector`` now (its limit)."""
        return self._offered_at(connector, self._clock(), share=True)

    def current_a(self, connector: int) -> float:
        """Amps per phase drawn on ``connector`` now (0 without a session)."""
        return self._draw_at(connector, self._clock())

    def power_w(self, connector: int) -> float:
        return self.current_a(connector) * NOMINAL_VOLTAGE * self.phases

    def _connector(self, connector: int) -> _Connector:
        try:
            return self._connectors[connector]
        except KeyError:
            raise ValueError(
                f"{self.charger_id} has connectors 1..{self.connectors}, not {connector}"
            ) from None

    def _now_text(self) -> str:
        return utc_timestamp(self._clock())

    def _purpose_limit(
        self,
        purpose: str,
        connector_ids: Iterable[int],
        t: float,
        tx_start: float,
        tx_id: int | None,
    ) -> float | None:
        for cid in connector_ids:
            candidates = [
                p
                for p in self.profiles
                if p.purpose == purpose
                and p.connector_id == cid
                and (purpose != "TxProfile" or p.transaction_id in (None, tx_id))
            ]
            for profile in sorted(candidates, key=lambda p: -p.stack_level):
                limit = profile.limit_at(t, tx_start, self.phases)
                if limit is not None:
                    return limit
        return None

    def _offered_at(self, connector: int, t: float, *, share: bool) -> float:
        limit = self.max_current_a
        if self.ignore_profiles:
            return limit
        limits = [limit]
        cp_max = self._purpose_limit("ChargePointMaxProfile", [0], t, t, None)
        if connector == 0:
            limits.append(cp_max if cp_max is not None else limit)
            return max(0.0, min(limits))
        session = self._connector(connector).session
        tx_start = session.started_at if session else t
        tx_id = session.transaction_id if session else None
        tx_limit = None
        if session is not None:
            tx_limit = self._purpose_limit("TxProfile", [connector], t, tx_start, tx_id)
        if tx_limit is None:
            tx_limit = self._purpose_limit("TxDefaultProfile", [connector, 0], t, tx_start, tx_id)
        if tx_limit is not None:
            limits.append(tx_limit)
        if cp_max is not None:
            running = sum(1 for c in self._connectors.values() if c.session is not None)
            limits.append(cp_max / max(1, running) if share else cp_max)
        return max(0.0, min(limits))

    def _draw_at(self, connector: int, t: float) -> float:
        if self._connector(connector).session is None:
            return 0.0
        return max(0.0, min(self.car_current_a, self._offered_at(connector, t, share=True)))

    def _accrue(self) -> None:
        """Add the energy drawn since the last update to every running session's register."""
        now = self._clock()
        for conn in self._connectors.values():
            if conn.session is None:
                continue
            elapsed = now - conn.last_accrual
            if elapsed > 0:
                amps = self._draw_at(conn.connector_id, conn.last_accrual)
                conn.register_wh += amps * NOMINAL_VOLTAGE * self.phases * elapsed / 3600.0
            conn.last_accrual = now

    def _charging_status(self, connector: int) -> str:
        return "Charging" if self.current_a(connector) > 0 else "SuspendedEVSE"

    def _idle_status(self, conn: _Connector) -> str:
        if not conn.operative:
            return "Unavailable"
        return "Reserved" if conn.reservation is not None else "Available"

    def _sampled(self, connector: int, context: str) -> list[JsonDict]:
        wanted = [m.strip() for m in self.config["MeterValuesSampledData"].value.split(",")]
        amps = self.current_a(connector)
        offered = self.offered_a(connector)
        conn = self._connector(connector)
        base = {"context": context, "format": "Raw", "location": "Outlet"}
        values: list[JsonDict] = []
        for measurand in wanted:
            if measurand == "Energy.Active.Import.Register":
                values.append(
                    {
                        "value": str(math.floor(conn.register_wh)),
                        **base,
                        "measurand": measurand,
                        "unit": "Wh",
                    }
                )
            elif measurand == "Power.Active.Import":
                power = amps * NOMINAL_VOLTAGE * self.phases
                values.append(
                    {"value": f"{power:.1f}", **base, "measurand": measurand, "unit": "W"}
                )
            elif measurand == "Current.Import":
                for index, phase in enumerate(("L1", "L2", "L3")):
                    value = amps if index < self.phases else 0.0
                    values.append(
                        {
                            "value": f"{value:.1f}",
                            **base,
                            "measurand": measurand,
                            "phase": phase,
                            "unit": "A",
                        }
                    )
            elif measurand == "Current.Offered":
                values.append(
                    {"value": f"{offered:.1f}", **base, "measurand": measurand, "unit": "A"}
                )
            elif measurand == "Power.Offered":
                power = offered * NOMINAL_VOLTAGE * self.phases
                values.append(
                    {"value": f"{power:.1f}", **base, "measurand": measurand, "unit": "W"}
                )
            elif measurand == "Voltage":
                for phase in ("L1-N", "L2-N", "L3-N")[: self.phases]:
                    values.append(
                        {
                            "value": f"{NOMINAL_VOLTAGE:.1f}",
                            **base,
                            "measurand": measurand,
                            "phase": phase,
                            "unit": "V",
                        }
                    )
        return values

    # ------------------------------------------------------------------ incoming calls

    async def _answer(self, action: str, payload: JsonDict) -> JsonDict:
        self._followup = None
        responder = self._responders.get(action)
        if responder is None:
            raise ocpp_error("NotImplemented", f"sim charger does not handle {action}")
        answer, self._followup = responder(payload)
        return answer

    def _after(self, action: str, payload: JsonDict, answer: JsonDict) -> None:
        followup, self._followup = self._followup, None
        if followup is not None and self._owner is not None:
            self._owner.spawn(self._guarded(action, followup), f"after-{action}")

    async def _guarded(self, action: str, followup: Followup) -> None:
        """Run a follow-up; losing the connection or a refused CALL is logged, not a crash."""
        try:
            await followup()
        except (ConnectionClosed, ConnectionError) as exc:
            log.info("sim charger %s: %s follow-up cut short: %s", self.charger_id, action, exc)
        except (SimCallError, TimeoutError) as exc:
            log.warning("sim charger %s: %s follow-up failed: %s", self.charger_id, action, exc)

    def _valid_connector(self, connector: Any, *, allow_zero: bool = False) -> bool:
        return isinstance(connector, int) and (
            connector in self._connectors or (allow_zero and connector == 0)
        )

    def _on_remote_start(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        id_tag = str(payload["idTag"])
        profile = payload.get("chargingProfile")
        rejected: tuple[JsonDict, Followup | None] = ({"status": "Rejected"}, None)
        if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
            return rejected
        requested = payload.get("connectorId")
        if requested is None:
            free = [c for c in self._connectors if self._free_for(c, id_tag)]
            if not free:
                return rejected
            connector = free[0]
        elif not self._valid_connector(requested) or not self._free_for(requested, id_tag):
            return rejected
        else:
            connector = requested
        self._connectors[connector].claimed = True

        async def start() -> None:
            try:
                if self.config["AuthorizeRemoteTxRequests"].value.lower() == "true":
                    result = await self.authorize(id_tag)
                    if result["idTagInfo"]["status"] != "Accepted":
                        return
                await self._begin_session(connector, id_tag, profile)
            finally:
                self._connectors[connector].claimed = False

        return {"status": "Accepted"}, start

    def _free_for(self, connector: int, id_tag: str) -> bool:
        conn = self._connectors[connector]
        if conn.session is not None or conn.claimed or not conn.operative:
            return False
        return conn.reservation is None or _same_tag(conn.reservation.id_tag, id_tag)

    def _on_remote_stop(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        tx_id = payload["transactionId"]
        for conn in self._connectors.values():
            if conn.session is not None and conn.session.transaction_id == tx_id:
                return {"status": "Accepted"}, functools.partial(
                    self.end_session, conn.connector_id, "Remote"
                )
        return {"status": "Rejected"}, None

    def _on_reset(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        reason = "HardReset" if payload["type"] == "Hard" else "SoftReset"

        async def reboot() -> None:
            for conn in list(self._connectors.values()):
                if conn.session is not None:
                    await self.stop_transaction(conn.connector_id, reason)
            await self.boot()
            for conn in self._connectors.values():
                if conn.pending_operative is not None:
                    conn.operative, conn.pending_operative = conn.pending_operative, None
                await self.status(conn.connector_id, self._idle_status(conn))

        return {"status": "Accepted"}, reboot

    def _on_get_configuration(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        keys = payload.get("key") or list(self.config)
        known = [
            {"key": k, "readonly": self.config[k].readonly, "value": self.config[k].value}
            for k in keys
            if k in self.config
        ]
        answer: JsonDict = {"configurationKey": known}
        unknown = [k for k in keys if k not in self.config]
        if unknown:
            answer["unknownKey"] = unknown
        return answer, None

    def _on_change_configuration(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        key, value = str(payload["key"]), str(payload["value"])
        entry = self.config.get(key)
        if entry is None:
            return {"status": "NotSupported"}, None
        if entry.readonly or not _config_value_ok(entry.kind, value):
            return {"status": "Rejected"}, None
        entry.value = value.lower() if entry.kind == "bool" else value
        return {"status": "Accepted"}, None

    def _on_set_charging_profile(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        connector = payload["connectorId"]
        data = payload["csChargingProfiles"]
        rejected: tuple[JsonDict, Followup | None] = ({"status": "Rejected"}, None)
        if not self._valid_connector(connector, allow_zero=True):
            return rejected
        purpose = data["chargingProfilePurpose"]
        unit = data["chargingSchedule"]["chargingRateUnit"]
        allowed_units = self.config["ChargingScheduleAllowedChargingRateUnit"].value
        if (unit == "A" and "Current" not in allowed_units) or (
            unit == "W" and "Power" not in allowed_units and "W" not in allowed_units
        ):
            return rejected
        if int(data["stackLevel"]) > int(self.config["ChargeProfileMaxStackLevel"].value):
            return rejected
        if purpose == "ChargePointMaxProfile" and connector != 0:
            return rejected
        if purpose == "TxProfile":
            session = None if connector == 0 else self._connectors[connector].session
            if session is None:
                return rejected
            if data.get("transactionId") not in (None, session.transaction_id):
                return rejected
        try:
            installed = self._install(connector, data)
        except (KeyError, TypeError, ValueError):
            return rejected
        if not installed:
            return rejected
        return {"status": "Accepted"}, self._refresh_statuses

    def _install(self, connector: int, data: Mapping[str, Any]) -> bool:
        """Install (or replace) a profile; False when the charger has no room for it."""
        profile = ChargingProfile.from_ocpp(connector, data)
        self._accrue()
        kept = [
            p
            for p in self.profiles
            if p.profile_id != profile.profile_id
            and not (
                p.connector_id == connector
                and p.purpose == profile.purpose
                and p.stack_level == profile.stack_level
            )
        ]
        if len(kept) >= int(self.config["MaxChargingProfilesInstalled"].value):
            return False
        self.profiles = [*kept, profile]
        return True

    def _on_clear_charging_profile(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        def matches(p: ChargingProfile) -> bool:
            if payload.get("id") is not None:
                return bool(p.profile_id == payload["id"])
            return (
                payload.get("connectorId") in (None, p.connector_id)
                and payload.get("chargingProfilePurpose") in (None, p.purpose)
                and payload.get("stackLevel") in (None, p.stack_level)
            )

        self._accrue()
        kept = [p for p in self.profiles if not matches(p)]
        if len(kept) == len(self.profiles):
            return {"status": "Unknown"}, None
        self.profiles = kept
        return {"status": "Accepted"}, self._refresh_statuses

    async def _refresh_statuses(self) -> None:
        """Charging <-> SuspendedEVSE when a new limit pauses or resumes a session."""
        for conn in list(self._connectors.values()):
            if conn.session is None or conn.status not in ("Charging", "SuspendedEVSE"):
                continue
            wanted = self._charging_status(conn.connector_id)
            if wanted != conn.status:
                await self.status(conn.connector_id, wanted)

    def _on_get_composite_schedule(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        connector = payload["connectorId"]
        if not self._valid_connector(connector, allow_zero=True):
            return {"status": "Rejected"}, None
        duration = int(payload["duration"])
        unit = payload.get("chargingRateUnit") or "A"
        t0 = self._clock()
        session = None if connector == 0 else self._connectors[connector].session
        tx_start = session.started_at if session else t0
        times = {t0}
        if not self.ignore_profiles:
            for profile in self.profiles:
                if profile.connector_id in (0, connector):
                    times |= profile.boundaries(t0, t0 + duration, tx_start)
        periods: list[JsonDict] = []
        for t in sorted(times):
            amps = self._offered_at(connector, t, share=False)
            limit = round(amps if unit == "A" else amps * NOMINAL_VOLTAGE * self.phases, 1)
            start = round(t - t0)
            if periods and periods[-1]["startPeriod"] == start:
                periods.pop()
            if not periods or periods[-1]["limit"] != limit:
                periods.append({"startPeriod": start, "limit": limit})
        stamp = utc_timestamp(t0)
        return {
            "status": "Accepted",
            "connectorId": connector,
            "scheduleStart": stamp,
            "chargingSchedule": {
                "duration": duration,
                "startSchedule": stamp,
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods,
            },
        }, None

    def _on_unlock_connector(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        connector = payload["connectorId"]
        if not self._valid_connector(connector):
            return {"status": "NotSupported"}, None
        if self._connectors[connector].session is None:
            return {"status": "Unlocked"}, None
        return {"status": "Unlocked"}, lambda: self.end_session(connector, "UnlockCommand")

    def _on_change_availability(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        connector = payload["connectorId"]
        if not self._valid_connector(connector, allow_zero=True):
            return {"status": "Rejected"}, None
        operative = payload["type"] == "Operative"
        targets = (
            list(self._connectors.values()) if connector == 0 else [self._connectors[connector]]
        )
        changed: list[_Connector] = []
        scheduled = False
        for conn in targets:
            if conn.session is not None:
                conn.pending_operative = operative
                scheduled = True
            elif conn.operative != operative:
                conn.operative = operative
                changed.append(conn)

        async def announce() -> None:
            for conn in changed:
                await self.status(conn.connector_id, self._idle_status(conn))

        return {"status": "Scheduled" if scheduled else "Accepted"}, announce if changed else None

    def _on_trigger_message(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        requested = payload["requestedMessage"]
        connector = payload.get("connectorId")
        if requested not in _TRIGGERABLE:
            return {"status": "NotImplemented"}, None
        if connector is not None and not self._valid_connector(connector, allow_zero=True):
            return {"status": "Rejected"}, None
        targets = [connector] if connector else list(self._connectors)

        async def send() -> None:
            if requested == "BootNotification":
                await self.boot()
            elif requested == "Heartbeat":
                await self.heartbeat()
            elif requested == "FirmwareStatusNotification":
                await self.firmware_status(self.firmware_state)
            elif requested == "DiagnosticsStatusNotification":
                await self.diagnostics_status(self.diagnostics_state)
            elif requested == "MeterValues":
                for c in targets:
                    await self.meter_values(c, context="Trigger")
            else:
                for c in targets:
                    await self.status(c, self._connectors[c].status)

        return {"status": "Accepted"}, send

    def _on_data_transfer(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        answer: JsonDict = {"status": "Accepted"}
        if "data" in payload:
            answer["data"] = payload["data"]
        return answer, None

    def _on_send_local_list(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        version = int(payload["listVersion"])
        entries = payload.get("localAuthorizationList") or []
        if len(entries) > int(self.config["SendLocalListMaxLength"].value):
            return {"status": "Failed"}, None
        if payload["updateType"] == "Full":
            if any("idTagInfo" not in e for e in entries):
                return {"status": "Failed"}, None
            new_list = {str(e["idTag"]).casefold(): dict(e["idTagInfo"]) for e in entries}
        else:
            if version <= self.local_list_version:
                return {"status": "VersionMismatch"}, None
            new_list = dict(self.local_list)
            for entry in entries:
                tag = str(entry["idTag"]).casefold()
                if "idTagInfo" in entry:
                    new_list[tag] = dict(entry["idTagInfo"])
                else:
                    new_list.pop(tag, None)
        if len(new_list) > int(self.config["LocalAuthListMaxLength"].value):
            return {"status": "Failed"}, None
        self.local_list = new_list
        self.local_list_version = version
        return {"status": "Accepted"}, None

    def _on_get_local_list_version(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        return {"listVersion": self.local_list_version}, None

    def _on_clear_cache(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        self.auth_cache.clear()
        return {"status": "Accepted"}, None

    def _on_reserve_now(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        connector = payload["connectorId"]
        reservation_id = int(payload["reservationId"])
        if not self._valid_connector(connector):
            return {"status": "Rejected"}, None  # ReserveConnectorZeroSupported is absent
        conn = self._connectors[connector]
        if not conn.operative:
            return {"status": "Unavailable"}, None
        if conn.session is not None or conn.claimed:
            return {"status": "Occupied"}, None
        if conn.reservation is not None and conn.reservation.reservation_id != reservation_id:
            return {"status": "Occupied"}, None
        for other in self._connectors.values():  # the same id replaces a reservation elsewhere
            if other.reservation is not None and other.reservation.reservation_id == reservation_id:
                other.reservation = None
        conn.reservation = Reservation(
            reservation_id=reservation_id,
            connector_id=connector,
            id_tag=str(payload["idTag"]),
            expiry_date=str(payload["expiryDate"]),
            parent_id_tag=payload.get("parentIdTag"),
        )
        return {"status": "Accepted"}, lambda: self.status(connector, "Reserved")

    def _on_cancel_reservation(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        reservation_id = payload["reservationId"]
        for conn in self._connectors.values():
            if conn.reservation is not None and conn.reservation.reservation_id == reservation_id:
                conn.reservation = None
                return {"status": "Accepted"}, functools.partial(
                    self.status, conn.connector_id, self._idle_status(conn)
                )
        return {"status": "Rejected"}, None

    def _on_get_diagnostics(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        file_name = f"{self.charger_id}-diagnostics.log"

        async def upload() -> None:
            await self.diagnostics_status("Uploading")
            await self.diagnostics_status("Uploaded")

        return {"fileName": file_name}, upload

    def _on_update_firmware(self, payload: JsonDict) -> tuple[JsonDict, Followup | None]:
        async def update() -> None:
            for state in ("Downloading", "Downloaded", "Installing", "Installed"):
                await self.firmware_status(state)

        return {}, update

    @property
    def reservations(self) -> list[Reservation]:
        return [c.reservation for c in self._connectors.values() if c.reservation is not None]


def _same_tag(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def _config_value_ok(kind: str, value: str) -> bool:
    if kind == "int":
        return value.isdigit()
    if kind == "bool":
        return value.lower() in ("true", "false")
    if kind == "measurands":
        items = [m.strip() for m in value.split(",")]
        return all(m in SUPPORTED_MEASURANDS for m in items) and len(items) <= len(
            SUPPORTED_MEASURANDS
        )
    return True


def _default_config(connectors: int) -> dict[str, ConfigKey]:
    """The configuration keys a small but honest 1.6 charger reports."""
    return {
        "AuthorizeRemoteTxRequests": ConfigKey("false", kind="bool"),
        "ChargeProfileMaxStackLevel": ConfigKey("8", readonly=True, kind="int"),
        "ChargingScheduleAllowedChargingRateUnit": ConfigKey("Current,Power", readonly=True),
        "ChargingScheduleMaxPeriods": ConfigKey("24", readonly=True, kind="int"),
        "ClockAlignedDataInterval": ConfigKey("0", kind="int"),
        "ConnectionTimeOut": ConfigKey("60", kind="int"),
        "HeartbeatInterval": ConfigKey("300", kind="int"),
        "LocalAuthListEnabled": ConfigKey("true", kind="bool"),
        "LocalAuthListMaxLength": ConfigKey("100", readonly=True, kind="int"),
        "LocalAuthorizeOffline": ConfigKey("true", kind="bool"),
        "LocalPreAuthorize": ConfigKey("false", kind="bool"),
        "MaxChargingProfilesInstalled": ConfigKey("16", readonly=True, kind="int"),
        "MeterValueSampleInterval": ConfigKey("60", kind="int"),
        "MeterValuesSampledData": ConfigKey(_DEFAULT_MEASURANDS, kind="measurands"),
        "MeterValuesSampledDataMaxLength": ConfigKey(
            str(len(SUPPORTED_MEASURANDS)), readonly=True, kind="int"
        ),
        "NumberOfConnectors": ConfigKey(str(connectors), readonly=True, kind="int"),
        "SendLocalListMaxLength": ConfigKey("100", readonly=True, kind="int"),
        "StopTransactionOnInvalidId": ConfigKey("true", kind="bool"),
        "SupportedFeatureProfiles": ConfigKey(
            "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,"
            "RemoteTrigger",
            readonly=True,
        ),
    }
