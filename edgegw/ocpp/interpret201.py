"""OCPP 2.0.1: what one answered charger call means, as :mod:`edgegw.ocpp.events`.

The twin of :mod:`edgegw.ocpp.interpret` (1.6), with the same promises: :func:`interpret201` is
pure and total (it never raises, whatever the payloads hold); a part it cannot read gives no
event, the rest of the call still does; every answered call gives :class:`CallExchanged` first.
Sampled values are read by the 1.6 interpreter's one reading (locations, phases, later values
winning, unknown units skipped): a 2.0.1 ``sampledValue`` is first put in 1.6 form, its
``unitOfMeasure.multiplier`` applied (value times 10 to the multiplier) and its unit taken from
``unitOfMeasure.unit``.

*Connector.* The events' ``connector`` is the **EVSE id** (``evse.id``, ``evseId``): in 2.0.1 an
EVSE is what charges one car and is metered, as a 1.6 connector was; the EVSE's own
``connectorId`` (which plug) is not carried. EVSE 0 (the station) gives no :class:`Measured`,
as 1.6's connector 0.

- ``BootNotification`` → :class:`ChargerBooted` (``chargingStation`` vendor, model, firmware,
  serial; ``accepted``: the answer's status).
- ``StatusNotification`` → :class:`ConnectorStatus`, ``connectorStatus`` mapped to the 1.6
  names: ``Available`` → ``Available``, ``Occupied`` → ``Preparing`` (a car is plugged in; 2.0.1
  says whether it charges in TransactionEvent), ``Reserved``, ``Unavailable``, ``Faulted`` as
  they are. Anything else gives no event.
- ``Authorize`` → :class:`CardAnswered` (``id_tag`` = ``idToken.idToken``, ``id_type`` =
  ``idToken.type``, status from ``idTokenInfo.status``).
- ``TransactionEvent``: ``Started`` → :class:`SessionStarted` (the charger's own string
  ``transactionId``, ``meter_start_wh`` = the energy register in its ``meterValue``);
  ``Updated`` → :class:`Measured`; ``Ended`` → :class:`Measured` (when it carries values) then
  :class:`SessionStopped` (``reason`` = ``stoppedReason``, else ``Local``). Each carries the
  ``triggerReason``. An event with an ``idToken`` and an answered ``idTokenInfo`` also gives
  :class:`CardAnswered` (``during="TransactionEvent"``). ``transactionInfo.chargingState`` gives a
  :class:`ConnectorStatus` as well: ``Charging``, ``SuspendedEV``, ``SuspendedEVSE`` as they are,
  ``EVConnected`` → ``Preparing`` (``Idle`` gives none). An event without ``evse`` gives no
  :class:`SessionStarted`/:class:`Measured`/:class:`ConnectorStatus` (it cannot say where)
  unless the caller passes ``known_evse``: 2.0.1 requires ``evse`` only on a transaction's
  first event, so following a transaction's EVSE across events is state, kept outside this pure
  reading by :class:`TransactionEvses` (the hub holds one).
- ``MeterValues`` on an EVSE ≥ 1 → :class:`Measured` (no transaction id: 2.0.1 sends those in
  TransactionEvent).
- ``NotifyReport`` → :class:`DeviceReported` (one part of a device model report).
- ``Heartbeat`` and every other action → :class:`CallExchanged` only.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from edgegw.ocpp.events import (
    CardAnswered,
    ChargerBooted,
    ConnectorStatus,
    DeviceReported,
    Event,
    Measured,
    SessionStarted,
    SessionStopped,
)
from edgegw.ocpp.interpret import (
    _PHASE_KEYS,
    _TOTAL,
    _connector,
    _number,
    _samples,
    _summed,
    _text,
    read_call,
)

CONNECTOR_STATUS: Final = {
    "Available": "Available",
    "Occupied": "Preparing",
    "Reserved": "Reserved",
    "Unavailable": "Unavailable",
    "Faulted": "Faulted",
}
"""2.0.1 ``connectorStatus`` → the events' (1.6) status names."""
CHARGING_STATE: Final = {
    "Charging": "Charging",
    "SuspendedEV": "SuspendedEV",
    "SuspendedEVSE": "SuspendedEVSE",
    "EVConnected": "Preparing",
}
"""2.0.1 ``transactionInfo.chargingState`` → the events' status names (``Idle``: none)."""
_MAX_MULTIPLIER: Final = 30
_MAX_TX_LENGTH: Final = 36  # 2.0.1: identifierString[36]

JsonDict = dict[str, Any]


def interpret201(
    charger_id: str,
    action: str,
    request: Any,
    response: Any,
    at: float,
    *,
    known_evse: int | None = None,
) -> tuple[Event, ...]:
    """The events an answered OCPP 2.0.1 charger call means (see the module's text).

    ``known_evse``: the EVSE of a TransactionEvent's transaction, known from an earlier event
    (:class:`TransactionEvses`), used when this event carries no ``evse`` of its own."""
    if (
        known_evse is not None
        and action == "TransactionEvent"
        and isinstance(request, dict)
        and "evse" not in request
    ):
        request = {**request, "evse": {"id": known_evse}}
    return read_call(_READERS, charger_id, action, request, response, at=at)


PER_CHARGER: Final = 64
"""Running transactions a charger's EVSE map keeps (a station has a few EVSEs; a transaction
whose Ended never came is dropped, oldest first, beyond this); as many ended ones and EVSE ids
are kept too."""


class TransactionEvses:
    """Which EVSE each running 2.0.1 transaction is on, per charger: the state
    :func:`interpret201` leaves out, so that a transaction's later events without ``evse`` are
    read on its EVSE.

    Called as the hub's 2.x interpreter (same signature as :func:`interpret201`): it reads the
    call with the EVSE it knows, then notes the call (:meth:`note`). A transaction is noted from
    its first event that names an EVSE (normally Started) and stays on that EVSE until it ends.
    The map outlives the charger's connection: a running transaction sends no second Started
    after a reconnect, and its Updated events name no EVSE. After a gateway restart the
    transactions the store recorded as running are put back (:meth:`running`).

    A transaction the map does not know (nothing recorded: a TransactionEvent without ``evse``
    whose Started the gateway never read) is placed by what the station has said about its
    EVSEs (every ``evseId``/``evse`` of its calls since the gateway started, and the EVSEs of
    its recorded transactions):

    * a station that named no EVSE but 1 (or none at all: most 2.0.1 stations have one) → EVSE 1,
      unless EVSE 1 already runs another known transaction;
    * else the one named EVSE that runs no known transaction, when there is exactly one;
    * else it is not placed: its events give no session, load or status (as an event of a
      transaction that ended, which is never placed again).

    Once placed it stays on that EVSE, as if its Started had said so, so its Updated events
    open the EVSE's session for load purposes (:mod:`edgegw.ocpp.lifecycle`: a measurement with
    a transaction id, an active ``chargingState``). At most ``per_charger`` transactions,
    ended transactions and EVSE ids are kept per charger (oldest dropped first).
    """

    def __init__(self, per_charger: int = PER_CHARGER) -> None:
        self._per_charger = per_charger
        self._evses: dict[str, OrderedDict[str, int]] = {}
        self._ended: dict[str, OrderedDict[str, None]] = {}
        self._named: dict[str, OrderedDict[int, None]] = {}

    def __call__(
        self, charger_id: str, action: str, request: Any, response: Any, at: float
    ) -> tuple[Event, ...]:
        known = None
        if action == "TransactionEvent":
            known = self._locate(charger_id, request)
        events = interpret201(charger_id, action, request, response, at, known_evse=known)
        self.note(charger_id, action, request, located=known)
        return events

    def evse_of(self, charger_id: str, transaction_id: str | None) -> int | None:
        """The EVSE ``transaction_id`` of ``charger_id`` runs on, if known."""
        held = self._evses.get(charger_id)
        if held is None or transaction_id is None:
            return None
        return held.get(transaction_id)

    def running(self, charger_id: str, transaction_id: str, evse: int) -> None:
        """The store recorded ``transaction_id`` as running on ``evse`` (read at start): its
        events are read on that EVSE. One already known or ended is left as it is."""
        if evse <= 0 or transaction_id in self._ended.get(charger_id, ()):
            return
        self._named_evse(charger_id, evse)
        held = self._evses.get(charger_id)
        if held is None or transaction_id not in held:
            self._hold(charger_id, transaction_id, evse)

    def _locate(self, charger_id: str, request: Any) -> int | None:
        """The EVSE to read a TransactionEvent on when it names none (see the class text)."""
        transaction_id = _request_transaction(request)
        if transaction_id is None or not isinstance(request, dict) or "evse" in request:
            return None
        held: Mapping[str, int] = self._evses.get(charger_id, {})
        if transaction_id in held:
            return held[transaction_id]
        if transaction_id in self._ended.get(charger_id, ()):
            return None
        busy = set(held.values())
        named = set(self._named.get(charger_id, ()))
        if named <= {1}:
            return None if 1 in busy else 1
        free = named - busy
        return free.pop() if len(free) == 1 else None

    def note(self, charger_id: str, action: str, request: Any, located: int | None = None) -> None:
        """Follow one answered call: the EVSEs it names; a TransactionEvent naming an EVSE (or
        ``located`` on one) for a transaction not known yet is noted; an Ended one forgets its
        transaction. Never raises."""
        if not isinstance(request, dict):
            return
        if action in ("StatusNotification", "MeterValues"):
            named = _connector(request.get("evseId"))
            if named is not None and named > 0:
                self._named_evse(charger_id, named)
            return
        if action != "TransactionEvent":
            return
        transaction_id = _request_transaction(request)
        evse_field = request.get("evse")
        evse = _connector(evse_field.get("id")) if isinstance(evse_field, dict) else None
        if evse is not None and evse > 0:
            self._named_evse(charger_id, evse)
        if transaction_id is None:
            return
        held = self._evses.get(charger_id)
        if request.get("eventType") == "Ended":
            if held is not None:
                held.pop(transaction_id, None)
                if not held:
                    del self._evses[charger_id]
            ended = self._ended.setdefault(charger_id, OrderedDict())
            ended[transaction_id] = None
            while len(ended) > self._per_charger:
                ended.popitem(last=False)
            return
        if held is not None and transaction_id in held:
            return
        evse = evse if evse is not None else located
        if evse is None or evse == 0:
            return
        self._hold(charger_id, transaction_id, evse)

    def _hold(self, charger_id: str, transaction_id: str, evse: int) -> None:
        held = self._evses.setdefault(charger_id, OrderedDict())
        held[transaction_id] = evse
        while len(held) > self._per_charger:
            held.popitem(last=False)

    def _named_evse(self, charger_id: str, evse: int) -> None:
        named = self._named.setdefault(charger_id, OrderedDict())
        named[evse] = None
        named.move_to_end(evse)
        while len(named) > self._per_charger:
            named.popitem(last=False)

    def size(self, charger_id: str) -> int:
        """How many transactions of ``charger_id`` are followed."""
        return len(self._evses.get(charger_id, ()))


def _request_transaction(request: Any) -> str | None:
    info = request.get("transactionInfo") if isinstance(request, dict) else None
    return _transaction_id(info.get("transactionId")) if isinstance(info, dict) else None


# ------------------------------------------------------------------ one reader per action


def _boot(charger_id: str, at: float, request: JsonDict, response: JsonDict) -> tuple[Event, ...]:
    station = request.get("chargingStation")
    station = station if isinstance(station, dict) else {}
    status = _text(response.get("status"))
    return (
        ChargerBooted(
            charger_id=charger_id,
            at=at,
            accepted=status == "Accepted",
            status=status,
            vendor=_text(station.get("vendorName")),
            model=_text(station.get("model")),
            firmware=_text(station.get("firmwareVersion")),
            serial=_text(station.get("serialNumber")),
        ),
    )


def _status(charger_id: str, at: float, request: JsonDict, response: JsonDict) -> tuple[Event, ...]:
    evse = _connector(request.get("evseId"))
    reported = request.get("connectorStatus")
    status = CONNECTOR_STATUS.get(reported) if isinstance(reported, str) else None
    if evse is None or status is None:
        return ()
    return (ConnectorStatus(charger_id=charger_id, at=at, connector=evse, status=status),)


def _authorize(
    charger_id: str, at: float, request: JsonDict, response: JsonDict
) -> tuple[Event, ...]:
    card = _card(charger_id, at, request, response, during="Authorize", evse=None)
    return () if card is None else (card,)


def _transaction(
    charger_id: str, at: float, request: JsonDict, response: JsonDict
) -> tuple[Event, ...]:
    kind = request.get("eventType")
    info = request.get("transactionInfo")
    info = info if isinstance(info, dict) else {}
    transaction_id = _transaction_id(info.get("transactionId"))
    trigger = _text(request.get("triggerReason"))
    evse_field = request.get("evse")
    evse = _connector(evse_field.get("id")) if isinstance(evse_field, dict) else None
    token = request.get("idToken")
    id_tag = _text(token.get("idToken")) if isinstance(token, dict) else None
    values = _values(request.get("meterValue"))
    energy = _summed(values[1], "energy") if values is not None else None
    out: list[Event] = []
    if kind == "Started" and evse is not None:
        out.append(
            SessionStarted(
                charger_id=charger_id,
                at=at,
                connector=evse,
                transaction_id=transaction_id,
                id_tag=id_tag,
                id_tag_status=_token_status(response),
                meter_start_wh=energy,
                trigger_reason=trigger,
            )
        )
    card = _card(charger_id, at, request, response, during="TransactionEvent", evse=evse)
    if card is not None:
        out.append(card)
    state = info.get("chargingState")
    status = CHARGING_STATE.get(state) if isinstance(state, str) else None
    if status is not None and evse is not None:
        out.append(ConnectorStatus(charger_id=charger_id, at=at, connector=evse, status=status))
    if values is not None and evse is not None and evse > 0 and kind in ("Updated", "Ended"):
        out.append(
            _measured(
                charger_id, at, evse, transaction_id=transaction_id, found=values, trigger=trigger
            )
        )
    if kind == "Ended":
        out.append(
            SessionStopped(
                charger_id=charger_id,
                at=at,
                transaction_id=transaction_id,
                connector=evse,
                id_tag=id_tag,
                meter_stop_wh=energy,
                reason=_text(info.get("stoppedReason")) or "Local",
                trigger_reason=trigger,
            )
        )
    return tuple(out)


def _meter_values(
    charger_id: str, at: float, request: JsonDict, response: JsonDict
) -> tuple[Event, ...]:
    evse = _connector(request.get("evseId"))
    values = _values(request.get("meterValue"))
    if evse is None or evse == 0 or values is None:
        return ()
    return (_measured(charger_id, at, evse, transaction_id=None, found=values, trigger=None),)


def _report(charger_id: str, at: float, request: JsonDict, response: JsonDict) -> tuple[Event, ...]:
    """NotifyReport → :class:`DeviceReported` (``requestId`` and ``seqNo`` ≥ 0 or no event;
    ``reportData`` entries that are objects, as sent)."""
    request_id, seq_no = _connector(request.get("requestId")), _connector(request.get("seqNo"))
    if request_id is None or seq_no is None:
        return ()
    data = request.get("reportData")
    entries = tuple(e for e in data if isinstance(e, dict)) if isinstance(data, list) else ()
    return (
        DeviceReported(
            charger_id=charger_id,
            at=at,
            request_id=request_id,
            seq_no=seq_no,
            tbc=request.get("tbc") is True,
            report_data=entries,
        ),
    )


_Reader = Callable[[str, float, JsonDict, JsonDict], tuple[Event, ...]]
_READERS: Final[Mapping[str, _Reader]] = {
    "BootNotification": _boot,
    "StatusNotification": _status,
    "Authorize": _authorize,
    "TransactionEvent": _transaction,
    "MeterValues": _meter_values,
    "NotifyReport": _report,
}


# ------------------------------------------------------------------ shared parts


def energy_wh(meter_value: Any) -> float | None:
    """The energy register (``Energy.Active.Import.Register``, Wh, multiplier applied) of a
    2.0.1 ``meterValue`` list, read as :class:`Measured` reads it; None: not there."""
    values = _values(meter_value)
    return None if values is None else _summed(values[1], "energy")


_Values = tuple[dict[str, None], dict[tuple[str, int], float]]


def _values(entries: Any) -> _Values | None:
    """The measurands and values of a ``meterValue`` list (None: no list)."""
    if not isinstance(entries, list):
        return None
    return _samples([_as_16(entry) for entry in entries])


def _as_16(entry: Any) -> Any:
    """A 2.0.1 ``meterValue`` entry in 1.6 form (string values, the unit at the top)."""
    items = entry.get("sampledValue") if isinstance(entry, dict) else None
    if not isinstance(items, list):
        return None
    return {"sampledValue": [_sample_16(item) for item in items]}


def _sample_16(item: Any) -> Any:
    if not isinstance(item, dict):
        return None
    number = _number(item.get("value"))
    if number is None:
        return None
    sample = {k: item[k] for k in ("measurand", "phase", "location") if k in item}
    unit = item.get("unitOfMeasure")
    if isinstance(unit, dict):
        multiplier = unit.get("multiplier", 0)
        if (
            isinstance(multiplier, bool)
            or not isinstance(multiplier, int)
            or abs(multiplier) > _MAX_MULTIPLIER
        ):
            return None
        number *= 10.0**multiplier
        if "unit" in unit:
            sample["unit"] = unit["unit"]
    if not math.isfinite(number):
        return None
    sample["value"] = repr(number)
    return sample


def _measured(
    charger_id: str,
    at: float,
    evse: int,
    *,
    transaction_id: str | None,
    found: _Values,
    trigger: str | None,
) -> Measured:
    measurands, values = found
    current: tuple[float | None, float | None, float | None] | None = None
    if any(k in values for k in _PHASE_KEYS["current"]):
        current = (
            values.get(("current", 0)),
            values.get(("current", 1)),
            values.get(("current", 2)),
        )
    offered = values.get(("offered", _TOTAL))
    if offered is None:
        offered = max((values[k] for k in _PHASE_KEYS["offered"] if k in values), default=None)
    return Measured(
        charger_id=charger_id,
        at=at,
        connector=evse,
        transaction_id=transaction_id,
        current_a=current,
        overall_current_a=values.get(("current", _TOTAL)),
        power_w=_summed(values, "power"),
        energy_wh=_summed(values, "energy"),
        offered_a=offered,
        measurands=tuple(measurands),
        trigger_reason=trigger,
    )


def _card(
    charger_id: str,
    at: float,
    request: JsonDict,
    response: JsonDict,
    *,
    during: str,
    evse: int | None,
) -> CardAnswered | None:
    token = request.get("idToken")
    if not isinstance(token, dict):
        return None
    id_tag = _text(token.get("idToken"))
    status = _token_status(response)
    if id_tag is None or status is None:
        return None
    return CardAnswered(
        charger_id=charger_id,
        at=at,
        id_tag=id_tag,
        status=status,
        during=during,
        connector=evse,
        id_type=_text(token.get("type")),
    )


def _token_status(response: JsonDict) -> str | None:
    info = response.get("idTokenInfo")
    return _text(info.get("status")) if isinstance(info, dict) else None


def _transaction_id(value: Any) -> str | None:
    """The charger's own transaction id string, as it is (2.0.1: at most 36 characters)."""
    if isinstance(value, str) and 0 < len(value) <= _MAX_TX_LENGTH:
        return value
    return None
