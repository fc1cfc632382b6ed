"""The OCPP versions the gateway speaks, by their WebSocket subprotocol names.

A charger lists the versions it speaks in ``Sec-WebSocket-Protocol``, most preferred first
(OCPP-J: "in order of preference"); the server picks one of them (RFC 6455 §4.2.2). The gateway
takes ``ocpp1.6`` whenever the charger offers it, because that is the version it serves in full
(offline answers, durable queue, load capping, local lists); a charger that offers no 1.6 gets
its first 2.x choice. A dual-version charger on a capped or standalone site thus keeps working
as before 2.x existed. The cloud connection then offers that one version and no other (the
cloud must speak what the charger speaks: the gateway does not translate between versions).
A site without a cloud takes 2.x chargers as well: the gateway answers them itself, as their
OCPP 2.1 Local Controller (:mod:`edgegw.proxy.local201`). A site
that caps load takes 1.6 and 2.0.1 chargers (:data:`CAPPABLE`: the load controller sends each
its profiles in its own version, ``edgegw.energy.profiles201``) and refuses 2.1 ones: the
gateway's 2.0.1 profiles are valid 2.1 payloads too (the ``ocpp`` library's v21 schemas), but
a 2.1 cloud's profiles are not yet kept under the cap (per-phase ``limit_L2``/``limit_L3``,
``setpoint`` and discharge limits, ``LocalGeneration`` profiles that add to the station's
maximum, ``PriorityCharging``), so the cap could be lifted by the cloud.
:func:`site_versions` is that rule.

- ``ocpp1.6``: relayed, answered offline, queued, remapped (everything the README describes).
- ``ocpp2.0.1``: relayed untouched, checked against the 2.0.1 schemas; read into events by
  :mod:`edgegw.ocpp.interpret201`. The gateway is its OCPP 2.1 Local Controller (Part 4 §6.3,
  Edition 2): while the cloud is unreachable or slow, and on a site without a cloud, the
  charger stays connected and is answered locally; its TransactionEvents are queued durably
  and replayed in order (``seqNo`` kept, ``offline: true`` set). (The first 2.x slice closed
  the charger with the cloud, 1011 ``cloud unreachable``: OCPP 2.0.1's mirror rule.)
- ``ocpp2.1``: relayed untouched (no schema check), message types 5 and 6 included.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

OCPP16: Final = "ocpp1.6"
OCPP201: Final = "ocpp2.0.1"
OCPP21: Final = "ocpp2.1"
SUPPORTED: Final = (OCPP16, OCPP201, OCPP21)
"""Every version a charger may connect with."""
V2: Final = frozenset({OCPP201, OCPP21})
"""Versions with the 2.x messages (TransactionEvent, string transaction ids, device model)."""
CAPPABLE: Final = frozenset({OCPP16, OCPP201})
"""Versions whose chargers the load controller caps (its profiles, the cloud's clamped)."""


def choose(offered: Iterable[object], allowed: Iterable[str] = SUPPORTED) -> str | None:
    """``ocpp1.6`` if the charger offered it and it is ``allowed``; else the first of the
    charger's ``offered`` subprotocols that is ``allowed`` (None: none)."""
    allowed_set = frozenset(allowed)
    names = [name for name in offered if isinstance(name, str) and name in allowed_set]
    if OCPP16 in names:
        return OCPP16
    return names[0] if names else None


def is_v2(version: str | None) -> bool:
    """The version speaks OCPP 2.x messages."""
    return version in V2


def site_versions(*, cloud: bool, capped: bool) -> tuple[tuple[str, ...], str | None]:
    """The versions a site takes (of :data:`SUPPORTED`, in that order), and why it takes no
    others (None: it takes them all). ``cloud``: the site has a cloud; ``capped``: it caps
    load (a ``[site]`` section). ``cloud`` no longer narrows them: a site without a cloud
    answers 2.x chargers itself (:mod:`edgegw.proxy.local201`)."""
    if capped:
        refused = [v for v in SUPPORTED if v not in CAPPABLE]
        if refused:
            names = " and ".join(refused)
            return (
                tuple(v for v in SUPPORTED if v in CAPPABLE),
                f"this site caps load; {names} chargers cannot be capped yet",
            )
    return SUPPORTED, None


def required(allowed: Iterable[str], why: str | None) -> str:
    """The close reason for a charger that offered none of the ``allowed`` versions:
    ``subprotocol ocpp1.6, ocpp2.0.1 or ocpp2.1 required`` with ``why`` in parentheses."""
    names = list(allowed)
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"subprotocol {listed} required" + ("" if why is None else f" ({why})")
