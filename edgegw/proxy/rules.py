"""What the relay records and does about an exchanged call: pure decisions, no I/O.

The session shell (:mod:`edgegw.proxy.session`) asks these functions what a call and its answer
mean for the site's records, and carries the answer out:

* :func:`records_of` — a call the charger exchanged (with the cloud or the gateway): which card
  answer to learn, which boot, status or session to record (a 2.x charger: its boot and status,
  :func:`records_of_v2`);
* :func:`card_answer` — a cloud answer carrying an ``idTagInfo`` for the card of the call;
* :func:`offline_start_refused` — a StartTransaction the gateway answered while the cloud was
  away, delivered later: did the cloud refuse its card?
* :func:`offline_token_refused` — the same for a 2.x TransactionEvent's ``idTokenInfo``;
* :func:`invalid_id_action` — StopTransactionOnInvalidId: stop that session or let it finish;
* :class:`RemoteStarts` — a session the cloud started is not refused by the offline policy
  (:func:`remote_start_token`: the card of a 1.6 or 2.x remote start);
* :func:`queued_record` — what a transaction message the gateway queued records (a copy re-sent
  after a crash is recorded once);
* :func:`backlog_version` — the OCPP version an orphan drain speaks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from edgegw.ocpp.interpret201 import energy_wh
from edgegw.ocpp.versions import OCPP201
from edgegw.proxy.idtokens import id_tag_info, token_text
from edgegw.proxy.local201 import UID_TOKENS
from edgegw.store.sessions201 import Start201, Stop201

CARD_ANSWERS = frozenset({"Authorize", "StartTransaction", "StopTransaction"})
"""Calls whose cloud answer says what the cloud thinks of the card (``idTagInfo``)."""
CARD_ANSWERS_V2 = frozenset({"Authorize", "TransactionEvent"})
"""The same for a 2.x charger (``idTokenInfo``)."""


@dataclass(frozen=True, slots=True)
class LearnCard:
    """Remember what the cloud answered for a card presented at this charger; ``literal``: a
    2.x token that is no card UID (``KeyCode``, ``eMAID``...), cached apart from card idTags."""

    id_tag: str
    info: dict[str, Any]
    literal: bool = False


@dataclass(frozen=True, slots=True)
class RecordBoot:
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordStatus:
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordStart:
    """A session the cloud accepted (its transaction id, None if the cloud gave no usable one)."""

    payload: dict[str, Any]
    transaction_id: int | None


@dataclass(frozen=True, slots=True)
class RecordStop:
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordStart201:
    """A 2.x transaction started (:mod:`edgegw.store.sessions201`)."""

    start: Start201


@dataclass(frozen=True, slots=True)
class RecordStop201:
    stop: Stop201


@dataclass(frozen=True, slots=True)
class RecordMeter201:
    """What a later event tells of a running 2.x transaction: a reading (``energy_wh``), its
    meter start when its Started had none; an ``idToken`` (``id_tag``), its card when its
    Started had none (a station whose transactions start before the driver is identified)."""

    tx_ref: str
    energy_wh: int | None
    id_tag: str = ""


Record = (
    LearnCard
    | RecordBoot
    | RecordStatus
    | RecordStart
    | RecordStop
    | RecordStart201
    | RecordStop201
    | RecordMeter201
)


def backlog_version(action: str | None) -> str | None:
    """The OCPP version an orphan drain speaks for a backlog whose oldest message is
    ``action``: ``ocpp2.0.1`` for a TransactionEvent, else None (the link's, 1.6).

    The outbox does not keep which 2.x version queued it: a 2.1 charger's backlog is drained as
    2.0.1; an event with fields only 2.1 has may be refused by a 2.0.1 cloud, and is then
    retried and parked, never dropped. The charger reconnecting meanwhile with 2.1 is refused
    until the backlog is through (:meth:`~edgegw.proxy.session.ChargerSession.attach`).
    """
    return OCPP201 if action == "TransactionEvent" else None


def remote_start_token(action: str, request: Mapping[str, Any]) -> str | None:
    """The card a cloud's remote start is for: a 1.6 RemoteStartTransaction's ``idTag``, a 2.x
    RequestStartTransaction's ``idToken.idToken``; None for any other call."""
    if action == "RemoteStartTransaction":
        return str(request.get("idTag", ""))
    if action == "RequestStartTransaction":
        token = request.get("idToken")
        value = token.get("idToken") if isinstance(token, Mapping) else None
        return value if isinstance(value, str) else None
    return None


def card_answer(request: Mapping[str, Any], response: Mapping[str, Any]) -> LearnCard | None:
    """The card answer to learn from a cloud answer, if it carries one for the call's card:
    a 1.6 ``idTagInfo`` for its ``idTag``, or a 2.x ``idTokenInfo`` for its ``idToken`` (read
    in 1.6 form, :func:`edgegw.proxy.idtokens.id_tag_info`; ``NoAuthorization`` is no card)."""
    info = response.get("idTagInfo")
    id_tag = request.get("idTag")
    if isinstance(info, dict) and isinstance(id_tag, str):
        return LearnCard(id_tag, info)
    token = token_text(request.get("idToken"))
    if token is None or not token[0] or token[1] == "NoAuthorization":
        return None
    learnt = id_tag_info(response.get("idTokenInfo"))
    return None if learnt is None else LearnCard(token[0], learnt, token[1] not in UID_TOKENS)


def records_of(
    action: str,
    request: dict[str, Any],
    response: dict[str, Any],
    answered_by: str,
    *,
    v2: bool = False,
    cloud_configured: bool = True,
) -> list[Record]:
    """What to record of a call the charger exchanged, answered by ``answered_by``.

    1.6 sessions are recorded here only when the cloud answered them: the gateway records the
    ones it answers itself when it answers (:mod:`edgegw.proxy.local`). A card is learnt only
    from the cloud's own answers, never from the gateway's. A 2.x charger (``v2``): its boot and
    status, read from their 2.0.1 fields (:func:`records_of_v2`), the cloud's ``idTokenInfo``
    learnt as for 1.6, and its TransactionEvents' sessions whoever answered them
    (:func:`transaction_records`; ``queued``: answered by the gateway on a site with a cloud),
    except on a cloudless site, where the gateway's answer waited for them
    (:meth:`~edgegw.proxy.session_records.Sessions201.answered_standalone`).
    """
    records: list[Record] = []
    by_cloud = answered_by == "cloud"
    if v2:
        if by_cloud and action in CARD_ANSWERS_V2:
            learn = card_answer(request, response)
            if learn is not None:
                records.append(learn)
        if action == "TransactionEvent":
            if not cloud_configured:  # recorded before its answer (the durability rule)
                return records
            queued = not by_cloud
            return [*records, *transaction_records(request, queued=queued, by_cloud=by_cloud)]
        return [*records, *records_of_v2(action, request)]
    if by_cloud and action in CARD_ANSWERS:
        learn = card_answer(request, response)
        if learn is not None:
            records.append(learn)
    if action == "BootNotification":
        records.append(RecordBoot(request))
    elif action == "StatusNotification":
        records.append(RecordStatus(request))
    elif by_cloud and action == "StartTransaction":
        transaction_id = response.get("transactionId")
        usable = transaction_id if isinstance(transaction_id, int) else None
        records.append(RecordStart(request, usable))
    elif by_cloud and action == "StopTransaction":
        records.append(RecordStop(request))
    return records


def records_of_v2(action: str, request: Mapping[str, Any]) -> list[Record]:
    """A 2.x charger's BootNotification and StatusNotification, in the terms the records keep
    (the 1.6 fields' names): the station's vendor, model, serial number and firmware; the
    status of an EVSE (which stands where a 1.6 connector stood), as the charger named it.
    A call without the fields it needs records nothing (never an empty vendor or status)."""
    if action == "BootNotification":
        station = request.get("chargingStation")
        if not isinstance(station, Mapping) or not isinstance(station.get("vendorName"), str):
            return []
        names = {
            "vendorName": "chargePointVendor",
            "model": "chargePointModel",
            "serialNumber": "chargePointSerialNumber",
            "firmwareVersion": "firmwareVersion",
        }
        return [
            RecordBoot(
                {ours: station[theirs] for theirs, ours in names.items() if theirs in station}
            )
        ]
    if action == "StatusNotification":
        evse, status = request.get("evseId"), request.get("connectorStatus")
        if not isinstance(evse, int) or isinstance(evse, bool) or not isinstance(status, str):
            return []
        payload = {"connectorId": evse, "status": status, "errorCode": "NoError"}
        if "timestamp" in request:
            payload["timestamp"] = request["timestamp"]
        return [RecordStatus(payload)]
    return []


Record201 = RecordStart201 | RecordStop201 | RecordMeter201


def transaction_records(
    request: Mapping[str, Any], *, queued: bool, by_cloud: bool = False
) -> list[Record201]:
    """What a 2.x TransactionEvent records of its session (:mod:`edgegw.store.sessions201`).

    ``Started`` records the session (the EVSE: ``evse.id``, 0 when it has none; the card:
    ``idToken.idToken``, empty without one; the meter start: its energy register, None
    without one); ``Ended`` stops it (the energy register, ``stoppedReason`` else ``Local``);
    an ``Updated`` with an energy register or an ``idToken`` gives :class:`RecordMeter201`
    (the meter start, the card of a session whose Started had none: written only where the
    record has none), as does an ``Ended`` with an ``idToken``, before its stop (a stop is
    priced by its session's card). An Ended's reading is never a meter start: such a
    session's energy is unknown, not 0.
    An event without a usable transaction id or timestamp records nothing.
    """
    info = request.get("transactionInfo")
    tx_ref = info.get("transactionId") if isinstance(info, Mapping) else None
    timestamp = request.get("timestamp")
    if not isinstance(tx_ref, str) or not tx_ref or not isinstance(timestamp, str):
        return []
    assert isinstance(info, Mapping)
    kind = request.get("eventType")
    energy = energy_wh(request.get("meterValue"))
    wh = None if energy is None else round(energy)
    token = token_text(request.get("idToken"))
    if kind == "Started":
        evse = request.get("evse")
        evse_id = evse.get("id") if isinstance(evse, Mapping) else None
        start = Start201(
            tx_ref,
            evse_id if isinstance(evse_id, int) and not isinstance(evse_id, bool) else 0,
            "" if token is None else token[0],
            wh,
            timestamp,
            queued,
            by_cloud,
        )
        return [RecordStart201(start)]
    id_tag = "" if token is None or token[1] == "NoAuthorization" else token[0]
    if kind == "Updated":
        return [] if wh is None and not id_tag else [RecordMeter201(tx_ref, wh, id_tag)]
    records: list[Record201] = []
    if kind == "Ended":
        if id_tag:
            records.append(RecordMeter201(tx_ref, None, id_tag))
        reason = info.get("stoppedReason")
        reason = reason if isinstance(reason, str) and reason else "Local"
        records.append(RecordStop201(Stop201(tx_ref, wh, timestamp, reason)))
    return records


@dataclass(frozen=True, slots=True)
class OfflineStartRefused:
    """The cloud refused the card of a session the gateway started while it was away."""

    transaction_id: int
    """The local id the charger was given (and still uses)."""
    id_tag: str
    status: Any
    """The cloud's ``idTagInfo.status`` as it sent it."""


def offline_start_refused(
    action: str,
    request: Mapping[str, Any],
    response: Mapping[str, Any],
    local_id: int | None,
) -> OfflineStartRefused | None:
    """Whether a queued message the cloud has now answered is a start it refused the card of.

    ``ConcurrentTx`` to a queued start is most often the cloud's answer to a copy of a start it
    already has, sent again after a connection closed: never a reason to stop the session (the
    link parks the session's later messages and says why).
    """
    if action != "StartTransaction" or local_id is None:
        return None
    info = response.get("idTagInfo")
    if not isinstance(info, dict) or info.get("status") in ("Accepted", "ConcurrentTx"):
        return None
    return OfflineStartRefused(local_id, str(request.get("idTag")), info.get("status"))


@dataclass(frozen=True, slots=True)
class OfflineTokenRefused:
    """The cloud refused the idToken of a 2.x transaction the gateway answered while it was
    away (in its answer to the replayed TransactionEvent)."""

    tx_ref: str
    """The charger's own transaction id."""
    id_token: str
    status: Any
    """The cloud's ``idTokenInfo.status`` as it sent it."""


def offline_token_refused(
    action: str, request: Mapping[str, Any], response: Mapping[str, Any]
) -> OfflineTokenRefused | None:
    """Whether a queued 2.x TransactionEvent the cloud has now answered carried a token the
    cloud refused (``idTokenInfo.status`` other than ``Accepted``; ``ConcurrentTx`` is never a
    reason to stop, as for 1.6). An event without an ``idToken`` (or ``NoAuthorization``) or
    without a transaction id refuses nothing."""
    if action != "TransactionEvent":
        return None
    token = token_text(request.get("idToken"))
    info = request.get("transactionInfo")
    tx_ref = info.get("transactionId") if isinstance(info, Mapping) else None
    answer = response.get("idTokenInfo")
    if token is None or token[1] == "NoAuthorization" or not isinstance(tx_ref, str):
        return None
    if not isinstance(answer, Mapping) or answer.get("status") in ("Accepted", "ConcurrentTx"):
        return None
    return OfflineTokenRefused(tx_ref, token[0], answer.get("status"))


@dataclass(frozen=True, slots=True)
class InvalidIdAction:
    stop: bool
    """Send the charger a RemoteStopTransaction for the session."""
    outcome: str
    """What happens to the session, for the log and the caretaker's event."""


def invalid_id_action(*, running: bool, stop_on_invalid_id: bool, free: bool) -> InvalidIdAction:
    """StopTransactionOnInvalidId for a session whose card the cloud refused after the fact.

    Only a session still running can be stopped, only when the site's policy says so, and never
    under free charging (the caretaker's decision that any card may charge at that charger).
    """
    stop = running and stop_on_invalid_id and not free
    outcome = "stopping it" if stop else ("it may finish" if running else "it had ended")
    if running and free:
        outcome += " (free charging is on)"
    return InvalidIdAction(stop, outcome)


# --------------------------------------------------------------------------------------------
# What the gateway answers for itself (edgegw.proxy.local)

REMOTE_START_HONOURED_S = 600.0
"""A remote start's idTag is honoured offline for this long (s)."""


class RemoteStarts:
    """The cards the cloud remote-started a session for, per charger, for a while.

    A session the cloud started (RemoteStartTransaction just before the link dropped) is never
    refused by the offline policy: its StartTransaction, answered by the gateway, gets the
    cloud's word (Accepted) unless the site refuses the card. Entries older than
    :data:`REMOTE_START_HONOURED_S` are forgotten as new ones come, so the table stays small.
    """

    def __init__(self, honoured_s: float = REMOTE_START_HONOURED_S) -> None:
        self._honoured_s = honoured_s
        self._started: dict[tuple[str, str], float] = {}

    def note(self, charger_id: str, id_tag: str, now: float) -> None:
        """The cloud's remote start for ``id_tag`` at ``charger_id`` was accepted at ``now``."""
        self._started = {k: t for k, t in self._started.items() if now - t < self._honoured_s}
        self._started[(charger_id, id_tag.upper())] = now

    def honoured(self, charger_id: str, id_tag: str, now: float) -> bool:
        """Whether a start of ``id_tag`` at ``charger_id`` now is the cloud's remote start."""
        started = self._started.get((charger_id, id_tag.upper()))
        return started is not None and now - started < self._honoured_s


class QueuedRecord(Enum):
    """What a transaction message the gateway queued for the cloud means for the sessions."""

    NOTHING = "nothing"
    START = "start"
    """Record the session (with its local id)."""
    START_IF_MISSING = "start-if-missing"
    """A copy of a start: recorded already unless the gateway stopped between the outbox
    commit and the record; record it then, once."""
    STOP = "stop"
    """Close the session (an unknown one is acknowledged anyway, and said)."""
    STOP_AGAIN = "stop-again"
    """A copy of a stop: closing an already closed session changes nothing, and is not said."""


def queued_record(action: str, *, first_time: bool) -> QueuedRecord:
    """The record a queued ``action`` calls for; ``first_time`` False: the outbox knew it."""
    if action == "StartTransaction":
        return QueuedRecord.START if first_time else QueuedRecord.START_IF_MISSING
    if action == "StopTransaction":
        return QueuedRecord.STOP if first_time else QueuedRecord.STOP_AGAIN
    return QueuedRecord.NOTHING
