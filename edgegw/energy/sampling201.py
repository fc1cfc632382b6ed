"""Meter sampling of an OCPP 2.0.1 charger, through its device model.

What :mod:`edgegw.energy.sampling` does for 1.6 with ``GetConfiguration`` and
``ChangeConfiguration``, done with ``GetVariables`` and ``SetVariables`` (OCPP 2.0.1 Part 2,
J02 and the device model's Referenced Components and Variables):

* ``SampledDataCtrlr.TxUpdatedMeasurands`` and ``TxUpdatedInterval`` are 1.6's
  ``MeterValuesSampledData`` and ``MeterValueSampleInterval``: the values a station sends in
  its ``TransactionEvent`` (``Updated``) while a car charges, which the load controller reads.
  The gateway adds the measurands load capping needs to the list (keeping every one there:
  the cloud bills with them; the least needed one dropped at a time if the station rejects
  the list) and sets the interval when the station samples less often or not at all.
* ``AlignedDataCtrlr.Measurands`` and ``Interval`` (clock-aligned values, sent in
  ``MeterValues`` and in ``TransactionEvent``) are used **only when the station has no
  SampledDataCtrlr list** (it answers ``UnknownComponent``/``UnknownVariable``, or refuses
  every list): a station that samples as asked sends nothing more, as on 1.6 where the
  gateway leaves the clock-aligned keys alone.

One ``GetVariables`` reads all four; each change is one ``SetVariables``. Pure of the
charger's identity: :func:`configure` gets the call to make (``ask``) and returns what is in
force; :class:`~edgegw.energy.sampling.MeterSampling` runs it and reports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from edgegw.energy.configvalues import comma_list, int_value

JsonDict = dict[str, Any]
Ask = Callable[[str, JsonDict], Awaitable[JsonDict]]
"""``(action, payload) -> answer``: a 2.0.1 call to the charger; raises when unanswered."""

SAMPLED: Final = "SampledDataCtrlr"
ALIGNED: Final = "AlignedDataCtrlr"
TX_MEASURANDS: Final = (SAMPLED, "TxUpdatedMeasurands")
TX_INTERVAL: Final = (SAMPLED, "TxUpdatedInterval")
ALIGNED_MEASURANDS: Final = (ALIGNED, "Measurands")
ALIGNED_INTERVAL: Final = (ALIGNED, "Interval")
VARIABLES: Final = (TX_MEASURANDS, TX_INTERVAL, ALIGNED_MEASURANDS, ALIGNED_INTERVAL)
TAKEN: Final = frozenset({"Accepted", "RebootRequired"})
"""``attributeStatus`` values that mean the station took the value."""
UNKNOWN: Final = frozenset({"UnknownComponent", "UnknownVariable"})

Variable = tuple[str, str]


def name(variable: Variable) -> str:
    """``Component.Variable``, as results and logs show it."""
    return f"{variable[0]}.{variable[1]}"


@dataclass(frozen=True, slots=True)
class Read:
    """One variable as ``GetVariables`` answered: its status and value."""

    status: str
    value: str | None


@dataclass(slots=True)
class Outcome:
    """What the station samples after the gateway asked (see ``SamplingResult``)."""

    measurands: tuple[str, ...] | None = None
    interval_s: int | None = None
    refused: dict[str, str] = field(default_factory=dict)
    reboot_required: list[str] = field(default_factory=list)


def get_variables_request(variables: Sequence[Variable] = VARIABLES) -> JsonDict:
    return {
        "getVariableData": [
            {"component": {"name": c}, "variable": {"name": v}} for c, v in variables
        ]
    }


def set_variables_request(variable: Variable, value: str) -> JsonDict:
    component, var = variable
    return {
        "setVariableData": [
            {
                "attributeValue": value,
                "component": {"name": component},
                "variable": {"name": var},
            }
        ]
    }


def read_results(answer: Mapping[str, Any]) -> dict[Variable, Read]:
    """``{(component, variable): Read}`` from a GetVariablesResponse; malformed items skipped
    (a variable the station left out reads as unknown)."""
    out: dict[Variable, Read] = {}
    for item in answer.get("getVariableResult") or ():
        if not isinstance(item, Mapping):
            continue
        component, variable = item.get("component"), item.get("variable")
        if not isinstance(component, Mapping) or not isinstance(variable, Mapping):
            continue
        key = (str(component.get("name")), str(variable.get("name")))
        value = item.get("attributeValue")
        out[key] = Read(str(item.get("attributeStatus")), None if value is None else str(value))
    return out


def set_status(answer: Mapping[str, Any]) -> str:
    """The ``attributeStatus`` of a one-item SetVariablesResponse (``"None"``: unreadable)."""
    results = answer.get("setVariableResult")
    if isinstance(results, list) and results and isinstance(results[0], Mapping):
        return str(results[0].get("attributeStatus"))
    return "None"


async def configure(
    ask: Ask,
    *,
    wanted: Sequence[str],
    possible: Collection[str] | None,
    interval_s: int,
) -> Outcome:
    """Ask the station for the ``wanted`` measurands (in order of need; only those in
    ``possible`` when its model lists what it can sample) every ``interval_s`` at most.
    Raises whatever ``ask`` raises for a call the station does not answer."""
    reads = read_results(await ask("GetVariables", get_variables_request()))
    outcome = Outcome()
    measurands, interval = TX_MEASURANDS, TX_INTERVAL
    sampled = reads.get(TX_MEASURANDS)
    if sampled is None or sampled.status in UNKNOWN:
        outcome.refused[name(TX_MEASURANDS)] = "not in its device model"
        measurands, interval = ALIGNED_MEASURANDS, ALIGNED_INTERVAL
    taken = await _measurands(ask, measurands, reads, outcome, wanted=wanted, possible=possible)
    if possible is not None and wanted[0] not in possible:
        outcome.refused.setdefault(name(measurands), f"its model cannot sample {wanted[0]}")
    elif not taken and measurands == TX_MEASURANDS:  # the station refused the list
        aligned = reads.get(ALIGNED_MEASURANDS)
        if aligned is not None and aligned.status not in UNKNOWN:
            measurands, interval = ALIGNED_MEASURANDS, ALIGNED_INTERVAL
            await _measurands(ask, measurands, reads, outcome, wanted=wanted, possible=possible)
    outcome.interval_s = await _interval(ask, interval, reads, interval_s, outcome)
    return outcome


async def _measurands(
    ask: Ask,
    variable: Variable,
    reads: Mapping[Variable, Read],
    outcome: Outcome,
    *,
    wanted: Sequence[str],
    possible: Collection[str] | None,
) -> bool:
    """Add what is ``wanted`` to ``variable``'s list; True when the list now has the first
    wanted measurand (the cars' currents)."""
    key = name(variable)
    read = reads.get(variable)
    if read is None or read.status != "Accepted":
        outcome.refused[key] = "not readable" if read is None else f"read: {read.status}"
        return False
    existing = comma_list(read.value)
    missing = [m for m in wanted if m not in existing]
    if possible is not None:
        missing = [m for m in missing if m in possible]
    outcome.measurands = tuple(existing)
    if not missing:
        return wanted[0] in existing
    status = ""
    for count in range(len(missing), 0, -1):  # all first; refused, the least needed goes
        adding = missing[:count]
        status = set_status(
            await ask(
                "SetVariables", set_variables_request(variable, ",".join([*existing, *adding]))
            )
        )
        if status in TAKEN:
            if status == "RebootRequired":
                outcome.reboot_required.append(key)
            left_out = missing[count:]
            if left_out:
                outcome.refused[key] = f"{', '.join(left_out)}: not taken"
            outcome.measurands = (*existing, *adding)
            return wanted[0] in outcome.measurands
        if status in UNKNOWN:
            break
    outcome.refused[key] = f"answered {status}"
    return wanted[0] in existing


async def _interval(
    ask: Ask,
    variable: Variable,
    reads: Mapping[Variable, Read],
    wanted: int,
    outcome: Outcome,
) -> int | None:
    key = name(variable)
    read = reads.get(variable)
    current = None if read is None or read.status != "Accepted" else int_value(read.value)
    if current is not None and 0 < current <= wanted:
        return current  # samples at least as often already (the cloud may want that)
    status = set_status(await ask("SetVariables", set_variables_request(variable, str(wanted))))
    if status in TAKEN:
        if status == "RebootRequired":
            outcome.reboot_required.append(key)
        return wanted
    outcome.refused[key] = f"answered {status}"
    return current


def touches_sampling(payload: Mapping[str, Any], response: Mapping[str, Any] | None) -> bool:
    """Did a cloud ``SetVariables`` the station took change one of the :data:`VARIABLES`?"""
    if response is None:
        return False
    taken = {
        (str(r.get("component", {}).get("name")), str(r.get("variable", {}).get("name")))
        for r in response.get("setVariableResult") or ()
        if isinstance(r, Mapping)
        and isinstance(r.get("component"), Mapping)
        and isinstance(r.get("variable"), Mapping)
        and r.get("attributeStatus") in TAKEN
    }
    return any(v in taken for v in VARIABLES)
