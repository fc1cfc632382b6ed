"""Setting the meter values the gateway needs on a charger (the ``chargers.configure`` op).

``MeterValuesSampledData`` gets what load capping and the records need, most needed first,
keeping every measurand already there (the cloud bills with them); ``MeterValueSampleInterval``
gets the interval the installer chose. One measurand a charger cannot sample makes it refuse
the whole list, so the least needed ones are dropped one at a time until it takes one. Each
function returns the key's entry of the report: what the charger answered, and why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from edgegw.commission.probe import key_value
from edgegw.commission.run import JsonDict
from edgegw.energy.sampling import (
    MAX_LENGTH,
    SAMPLE_INTERVAL,
    SAMPLED_DATA,
    TAKEN,
    WANTED,
    ConfigEntry,
    comma_list,
    int_value,
)

ChangeFn = Callable[[str, str], Awaitable[str]]
"""``(key, value) -> status``: a ChangeConfiguration of the charger being configured."""

CONFIGURE_MEASURANDS: Final = (*WANTED, "Energy.Active.Import.Register", "Power.Active.Import")
"""What ``chargers.configure`` asks for, most needed first."""


async def set_measurands(change: ChangeFn, keys: Mapping[str, ConfigEntry]) -> JsonDict:
    """Add what :data:`CONFIGURE_MEASURANDS` misses to ``MeterValuesSampledData``, keeping
    what is there, within the list's maximum length; the key's entry of the report."""
    entry = keys.get(SAMPLED_DATA)
    result: JsonDict = {"key": SAMPLED_DATA, "previous": None, "attempts": []}
    if entry is None:
        return {
            **result,
            "status": "NotSupported",
            "value": None,
            "value_list": [],
            "detail": "the charger does not report this key: it cannot be set",
        }
    existing = comma_list(entry.value)
    result["previous"] = entry.value
    missing = [m for m in CONFIGURE_MEASURANDS if m not in existing]
    if not missing:
        return {
            **result,
            "status": "Unchanged",
            "value": entry.value,
            "value_list": existing,
            "detail": "already samples " + ", ".join(CONFIGURE_MEASURANDS),
        }
    if entry.readonly:
        return {
            **result,
            "status": "Rejected",
            "value": entry.value,
            "value_list": existing,
            "detail": f"read-only on this charger; it does not sample {', '.join(missing)}",
        }
    room = int_value(key_value(keys, MAX_LENGTH))
    left_out: list[str] = []
    if room is not None and len(existing) + len(missing) > room:
        keep = max(0, room - len(existing))
        left_out = missing[keep:]
        missing = missing[:keep]
        if not missing:
            return {
                **result,
                "status": "Rejected",
                "value": entry.value,
                "value_list": existing,
                "detail": f"the list is full ({MAX_LENGTH} = {room}): remove a measurand "
                f"to make room for {left_out[0]}",
            }
    # One measurand the charger cannot sample makes it refuse the whole list: drop the
    # least needed one at a time until it takes one (Current.Import is tried last alone).
    status = "Rejected"
    for count in range(len(missing), 0, -1):
        adding = missing[:count]
        wanted = [*existing, *adding]
        status = await change(SAMPLED_DATA, ",".join(wanted))
        result["attempts"].append({"value": ",".join(wanted), "status": status})
        if status in TAKEN:
            left_out = [*missing[count:], *left_out]
            detail = f"now samples {', '.join(wanted)}"
            if left_out:
                detail += f"; not taken: {', '.join(left_out)}"
            if status == "RebootRequired":
                detail += "; takes effect after the charger restarts"
            return {
                **result,
                "status": status,
                "value": ",".join(wanted),
                "value_list": wanted,
                "detail": detail,
                "left_out": left_out,
            }
        if status == "NotSupported":
            break
    return {
        **result,
        "status": status,
        "value": entry.value,
        "value_list": existing,
        "detail": f"the charger answered {status} to every list with "
        f"{', '.join(missing[:1])}; it keeps sampling {entry.value or 'nothing'}",
    }


async def set_interval(
    change: ChangeFn, keys: Mapping[str, ConfigEntry], interval: int
) -> JsonDict:
    """Set ``MeterValueSampleInterval`` to ``interval`` s; the key's entry of the report."""
    entry = keys.get(SAMPLE_INTERVAL)
    result: JsonDict = {"key": SAMPLE_INTERVAL, "previous": None, "wanted": str(interval)}
    if entry is None:
        return {
            **result,
            "status": "NotSupported",
            "value": None,
            "detail": "the charger does not report this key: it cannot be set",
        }
    result["previous"] = entry.value
    if int_value(entry.value) == interval:
        return {
            **result,
            "status": "Unchanged",
            "value": entry.value,
            "detail": f"already {interval} s",
        }
    if entry.readonly:
        return {
            **result,
            "status": "Rejected",
            "value": entry.value,
            "detail": f"read-only on this charger; it stays at {entry.value} s",
        }
    status = await change(SAMPLE_INTERVAL, str(interval))
    if status in TAKEN:
        detail = f"{entry.value} s -> {interval} s"
        if status == "RebootRequired":
            detail += "; takes effect after the charger restarts"
        return {**result, "status": status, "value": str(interval), "detail": detail}
    return {
        **result,
        "status": status,
        "value": entry.value,
        "detail": f"the charger answered {status}; it stays at {entry.value} s",
    }
