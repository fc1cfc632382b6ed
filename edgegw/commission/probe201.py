"""``chargers probe`` of an OCPP 2.x station: its device model, asked for and collected.

A 2.x station has no GetConfiguration: asked ``GetBaseReport`` (``FullInventory``, a
``requestId`` of the gateway's), it answers ``Accepted`` and then sends its components and
variables in ``NotifyReport`` calls (``seqNo`` from 0, ``tbc`` true until the last). The
commissioning observer keeps the parts of that ``requestId`` while the probe waits
(:meth:`~edgegw.commission.observer.CommissionObserver.collect_reports`); they are read by
:mod:`edgegw.commission.devicemodel`. A report that does not complete in time is returned as
far as it came, saying which parts are missing. The NotifyReport calls are the station's own:
they are relayed to the cloud like any other (the CSMS sees a report it did not ask for, which
OCPP allows it to ignore).

:func:`as_configuration` puts what the device model says in OCPP 1.6 key terms, so the
proposed hardware profile is built by the one builder
(:func:`~edgegw.energy.chargermodels.model_from_configuration`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from edgegw.commission.devicemodel import DeviceModel, read_reports
from edgegw.commission.observer import ChargerGone, CommissionObserver

JsonDict = dict[str, Any]

REPORT_TIMEOUT: Final = 60.0
"""How long a probe waits for a station's whole report (s)."""

Ask = Callable[[str, str, JsonDict, str], Awaitable[JsonDict]]
"""``(charger_id, action, payload, version) -> answer``: a gateway call in that version."""


class ReportRefused(Exception):
    """The station answered GetBaseReport with something else than Accepted."""


@dataclass(frozen=True, slots=True)
class Reported:
    """A station's device model as far as it came, and what is missing (None: nothing)."""

    model: DeviceModel
    request_id: int
    missing: str | None


async def read_device_model(
    ask: Ask,
    observer: CommissionObserver,
    charger_id: str,
    version: str,
    *,
    request_id: int,
    timeout: float = REPORT_TIMEOUT,
) -> Reported:
    """GetBaseReport ``FullInventory`` and every NotifyReport part up to the last.

    Raises :class:`ReportRefused` (with the status) when the station does not take it and
    :class:`~edgegw.commission.observer.ChargerGone` when it disconnects before the end."""
    parts = observer.collect_reports(charger_id, request_id)
    try:
        payload = {"requestId": request_id, "reportBase": "FullInventory"}
        answer = await ask(charger_id, "GetBaseReport", payload, version)
        status = str(answer.get("status", "no status"))
        if status == "EmptyResultSet":
            return Reported(DeviceModel(complete=True), request_id, None)
        if status != "Accepted":
            raise ReportRefused(status)
        with contextlib.suppress(TimeoutError):  # what came is returned, the rest named
            await parts.wait(timeout)
        if parts.gone and not parts.complete:
            raise ChargerGone(f"{charger_id} disconnected during its report")
        missing = None
        if not parts.complete:
            missing = f"{parts.missing()}: not received in {timeout:g} s"
        return Reported(read_reports(parts.payloads(), request_id), request_id, missing)
    finally:
        observer.stop_collecting(parts)


def as_configuration(summary: JsonDict) -> JsonDict:
    """A GetConfiguration-like answer saying what the device model summary says (for the
    proposed hardware profile; what it does not say is left out, so the base profile's
    value stays)."""
    keys: dict[str, str] = {}
    sc, ll = summary["smart_charging"], summary["local_list"]
    features = ["Core"]
    if sc["supported"]:
        features.append("SmartCharging")
    if ll["supported"]:
        features.append("LocalAuthListManagement")
    if sc["supported"] is not None or ll["supported"] is not None:
        keys["SupportedFeatureProfiles"] = ",".join(features)
    for key, value in (
        ("ChargeProfileMaxStackLevel", sc["max_stack_level"]),
        ("ChargingScheduleMaxPeriods", sc["max_periods"]),
        ("MaxChargingProfilesInstalled", sc["max_profiles"]),
        ("LocalAuthListMaxLength", ll["max_length"]),
        ("SendLocalListMaxLength", ll["send_max_length"]),
    ):
        if value is not None:
            keys[key] = str(value)
    units = {"A": "Current", "W": "Power"}
    if sc["rate_units"]:
        keys["ChargingScheduleAllowedChargingRateUnit"] = ",".join(
            units[u] for u in sc["rate_units"] if u in units
        )
    if sc["phase_switching"] is not None:
        keys["ConnectorSwitch3to1PhaseSupported"] = "true" if sc["phase_switching"] else "false"
    return {
        "configurationKey": [
            {"key": key, "value": value, "readonly": True} for key, value in keys.items()
        ]
    }
