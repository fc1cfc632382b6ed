"""A 2.0.1 station's local list: its capabilities from the device model, and the messages in
2.0.1 form (OCPP 2.0.1 Part 2, D01 SendLocalList, D02 GetLocalListVersion, and the
``LocalAuthListCtrlr`` of appendix 3). The list pusher (:mod:`edgegw.auth.listpush`) keeps a
2.0.1 station's list as it keeps a 1.6 charger's, through these:

* Capabilities: one ``GetVariables`` of ``LocalAuthListCtrlr`` ``Available``, ``Enabled``,
  ``Entries``, ``ItemsPerMessage`` and ``BytesPerMessage`` in place of 1.6's GetConfiguration
  keys. A station without the component (``UnknownComponent``, or none of the variables
  reported), or with ``Available`` or
  ``Enabled`` false, is not pushed a list (as a 1.6 charger without the profile or with
  ``LocalAuthListEnabled`` false). ``ItemsPerMessage`` is 1.6's ``SendLocalListMaxLength``;
  ``BytesPerMessage`` also bounds each message (:func:`chunks`). The list's size is the
  ``maxLimit`` of ``Entries``, which ``GetVariables`` does not give (it is a characteristic,
  reported by ``GetBaseReport``): a list too long for the station is answered ``Failed`` and
  logged as a refusal, as for a 1.6 charger that refuses its list; ``Entries`` (the count it
  holds) is only recorded.
* Messages: ``versionNumber`` for ``listVersion``, ``AuthorizationData`` entries with an
  ``IdTokenType`` (:func:`~edgegw.auth.cloudlist201.entry_201`: UIDs in the charger's format as
  ``ISO14443``, a 2.x token of the cloud's list with its own type, a 1.6 token as ``Central``;
  statuses, expiry and parent in 2.0.1 terms), and no
  ``localAuthorizationList`` at all for an empty one (the 2.0.1 schema wants at least one item).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from edgegw.energy.configvalues import int_value

JsonDict = dict[str, Any]

CONTROLLER: Final = "LocalAuthListCtrlr"
VARIABLES: Final = ("Available", "Enabled", "Entries", "ItemsPerMessage", "BytesPerMessage")
ENVELOPE_BYTES: Final = 64
"""Room left in ``BytesPerMessage`` for the frame around the payload (type, a 36-character
message id, the action, brackets and quotes)."""


def get_variables_request() -> JsonDict:
    return {
        "getVariableData": [
            {"component": {"name": CONTROLLER}, "variable": {"name": v}} for v in VARIABLES
        ]
    }


def read_capabilities(answer: Mapping[str, Any]) -> Capabilities:
    """What the station said of its ``LocalAuthListCtrlr`` (see the module)."""
    values: dict[str, str | None] = {}
    unknown_component = False
    for item in answer.get("getVariableResult") or ():
        if not isinstance(item, Mapping):
            continue
        component, variable = item.get("component"), item.get("variable")
        if not isinstance(component, Mapping) or not isinstance(variable, Mapping):
            continue
        if component.get("name") != CONTROLLER:
            continue
        status = item.get("attributeStatus")
        unknown_component |= status == "UnknownComponent"
        value = item.get("attributeValue")
        if status == "Accepted" and value is not None:
            values[str(variable.get("name"))] = str(value)
    available = _bool(values.get("Available"))
    enabled = _bool(values.get("Enabled"))
    reason = ""
    if not values:
        reason = f"no {CONTROLLER} in its device model" + (
            "" if unknown_component else " (none of its variables reported)"
        )
    elif available is False:
        reason = f"{CONTROLLER}.Available is false"
    elif enabled is False:
        reason = f"{CONTROLLER}.Enabled is false"
    return Capabilities(
        supported=not reason,
        enabled=enabled,
        entries=int_value(values.get("Entries")),
        items_max=int_value(values.get("ItemsPerMessage")) or None,
        bytes_max=int_value(values.get("BytesPerMessage")) or None,
        reason=reason,
    )


@dataclass(frozen=True, slots=True)
class Capabilities:
    """A 2.0.1 station's list capabilities, as :func:`read_capabilities` reads them."""

    supported: bool
    enabled: bool | None
    entries: int | None
    """``Entries``: how many the station holds now."""
    items_max: int | None
    """``ItemsPerMessage``."""
    bytes_max: int | None
    """``BytesPerMessage``."""
    reason: str


def send_request(version: int, full: bool, entries: list[JsonDict]) -> JsonDict:
    """A 2.0.1 ``SendLocalList`` request of ``entries`` (already ``AuthorizationData``)."""
    payload: JsonDict = {
        "versionNumber": version,
        "updateType": "Full" if full else "Differential",
    }
    if entries:
        payload["localAuthorizationList"] = entries
    return payload


def reported_version(answer: Mapping[str, Any]) -> int:
    """``GetLocalListVersion``'s ``versionNumber`` (0: no list); -1 when unreadable."""
    value = answer.get("versionNumber")
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def chunks(
    items: list[JsonDict],
    items_max: int | None,
    bytes_max: int | None,
    size: Callable[[JsonDict], int],
) -> list[list[JsonDict]]:
    """``items`` cut into messages of at most ``items_max`` entries whose payloads stay within
    ``bytes_max`` (less :data:`ENVELOPE_BYTES`); ``size(item)`` is an entry's size as sent.
    An entry too big for a message of its own still goes alone (the station says Failed)."""
    budget = None if bytes_max is None else bytes_max - ENVELOPE_BYTES - _HEAD_BYTES
    out: list[list[JsonDict]] = []
    current: list[JsonDict] = []
    used = 0
    for item in items:
        cost = size(item) + 1  # the comma
        full_count = items_max is not None and len(current) >= items_max
        full_bytes = budget is not None and current and used + cost > budget
        if full_count or full_bytes:
            out.append(current)
            current, used = [], 0
        current.append(item)
        used += cost
    if current:
        out.append(current)
    return out


def json_size(item: JsonDict) -> int:
    """Bytes of ``item`` as the gateway's frames write JSON (compact, ASCII)."""
    return len(json.dumps(item, separators=(",", ":")))


_HEAD_BYTES: Final = json_size(
    {"versionNumber": 2**31 - 1, "updateType": "Differential", "localAuthorizationList": []}
)


def _bool(value: str | None) -> bool | None:
    text = (value or "").strip().lower()
    if text == "true":
        return True
    if text == "false":
        return False
    return None
