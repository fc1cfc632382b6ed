"""The events one exchanged charger call means, whatever the OCPP version.

Each event is frozen and carries the charger's id and the gateway's clock (``at``). Transaction
ids are strings (OCPP 1.6's integers written in decimal, OCPP 2.0.1's own strings), as the
*charger* knows them. Connector statuses use OCPP 1.6's names (``Available``, ``Preparing``,
``Charging``, ``SuspendedEV``, ``SuspendedEVSE``, ``Finishing``, ``Reserved``, ``Unavailable``,
``Faulted``); an OCPP 2.0.1 interpreter maps its own to them. Which statuses open or end a
session is :mod:`edgegw.ocpp.lifecycle`'s one rule.

Phases are the *charger's* phases (its L1, L2, L3); which site phase each is wired to is the
site's business (the load controller's wiring), not the event's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

ChargerPhases = tuple[float | None, float | None, float | None]
"""A value per charger phase L1, L2, L3 (None: not reported)."""

NOMINAL_VOLTAGE: Final = 230.0
"""Phase-to-neutral volts used to turn a power into a current when no current was reported."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerEvent:
    """Base of every event: which charger, and when the gateway saw it (its clock, s)."""

    charger_id: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerConnected(ChargerEvent):
    """The charger's WebSocket connection was accepted."""

    version: str | None = None
    """The OCPP version it speaks (its subprotocol, e.g. ``ocpp2.0.1``); None: not known."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerDisconnected(ChargerEvent):
    """The charger's connection closed (nothing it measured holds any longer)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallExchanged(ChargerEvent):
    """A charger call (any action, ``Heartbeat`` too) was answered: the charger is alive.

    Comes first, before the events the call means; calls answered with a CALLERROR give none.
    """

    action: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerBooted(ChargerEvent):
    """A BootNotification and the answer the charger got."""

    accepted: bool
    status: str | None = None
    """The registration status as answered (``Accepted``, ``Pending``, ``Rejected``)."""
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorStatus(ChargerEvent):
    """A connector's (connector 0: the whole charger's) status as the charger reported it."""

    connector: int
    status: str
    error_code: str | None = None
    info: str | None = None
    vendor_error_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CardAnswered(ChargerEvent):
    """A card (idTag / idToken) the charger presented, and the status it was answered with.

    ``during`` is the call it came in (``Authorize`` or ``StartTransaction``; 2.0.1:
    ``TransactionEvent``); ``connector`` is None for Authorize.
    """

    id_tag: str
    status: str
    during: str
    connector: int | None = None
    id_type: str | None = None
    """OCPP 2.0.1's ``idToken.type`` (``ISO14443``, ``eMAID``, ``Central``…); 1.6: None."""

    @property
    def accepted(self) -> bool:
        return self.status == "Accepted"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStarted(ChargerEvent):
    """A transaction started on a connector (its id as the charger got it, None if none)."""

    connector: int
    transaction_id: str | None
    id_tag: str | None
    id_tag_status: str | None = None
    meter_start_wh: float | None = None
    trigger_reason: str | None = None
    """OCPP 2.0.1's ``triggerReason`` (``Authorized``, ``CablePluggedIn``…); 1.6: None."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStopped(ChargerEvent):
    """A transaction ended (``connector`` None when the call did not say, as in OCPP 1.6)."""

    transaction_id: str | None
    connector: int | None = None
    id_tag: str | None = None
    meter_stop_wh: float | None = None
    reason: str = "Local"
    trigger_reason: str | None = None
    """OCPP 2.0.1's ``triggerReason`` of the ending event; 1.6: None."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceReported(ChargerEvent):
    """One part of a 2.x station's device model report (a ``NotifyReport`` call): the
    ``requestId`` of the GetBaseReport/GetReport it answers, its ``seqNo`` (from 0), ``tbc``
    (more parts follow) and its ``reportData`` entries as sent (read by
    :mod:`edgegw.commission.devicemodel`)."""

    request_id: int
    seq_no: int
    tbc: bool = False
    report_data: tuple[dict[str, object], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured(ChargerEvent):
    """What a connector measured, from its latest sampled values (later values win).

    ``current_a`` holds the currents reported *with* a phase; ``overall_current_a`` a current
    reported without one (OCPP: "an overall value"). :meth:`currents` is the one rule that turns
    them into a current per charger phase: every consumer uses it.
    """

    connector: int
    transaction_id: str | None = None
    current_a: ChargerPhases | None = None
    overall_current_a: float | None = None
    power_w: float | None = None
    energy_wh: float | None = None
    offered_a: float | None = None
    measurands: tuple[str, ...] = ()
    """Every measurand the call carried, at any location, in the order first seen."""
    trigger_reason: str | None = None
    """OCPP 2.0.1's ``triggerReason`` when it came in a TransactionEvent; otherwise None."""

    def currents(self, phases: int, *, from_power: bool = True) -> tuple[float, ...] | None:
        """The current (A, ≥ 0) on each of the charger's first ``phases`` phases, or None.

        Phased values win (a phase not reported counts 0). When only phases beyond the first
        ``phases`` were reported (a single-phase charger naming its current ``L2`` or ``L3``),
        the largest of them flows on every one of the ``phases``: a load is never under-counted
        as 0 A. A current without a phase is taken as flowing on *every* one of the ``phases``
        (the cautious reading: a three-phase car drawing 16 A reports 16 A, not 48 A). Without
        any current, ``from_power`` derives one from the total active power at
        :data:`NOMINAL_VOLTAGE`, spread over ``phases``.
        """
        count = 1 if phases < 1 else 3 if phases > 3 else phases
        current = self.current_a  # read once per MeterValues: no generator, no call per phase
        if current is not None:
            l1, l2, l3 = current
            if l1 is not None or l2 is not None or l3 is not None:
                if l1 is None and (count < 2 or l2 is None) and (count < 3 or l3 is None):
                    beyond = max(c for c in current[count:] if c is not None)
                    return (max(0.0, beyond),) * count
                return (
                    l1 if l1 is not None and l1 > 0.0 else 0.0,
                    l2 if l2 is not None and l2 > 0.0 else 0.0,
                    l3 if l3 is not None and l3 > 0.0 else 0.0,
                )[:count]
        if self.overall_current_a is not None:
            return (max(0.0, self.overall_current_a),) * count
        if from_power and self.power_w is not None:
            return (max(0.0, self.power_w / (NOMINAL_VOLTAGE * count)),) * count
        return None


Event = (
    ChargerConnected
    | ChargerDisconnected
    | CallExchanged
    | ChargerBooted
    | ConnectorStatus
    | CardAnswered
    | SessionStarted
    | SessionStopped
    | Measured
    | DeviceReported
)
"""Every event a subscriber may receive (match on the type)."""
