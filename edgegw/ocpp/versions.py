"""The OCPP versions the gateway speaks, by their WebSocket subprotocol names.

A charger lists the versions it speaks in ``Sec-WebSocket-Protocol``, most preferred first
(OCPP-J: "in order of preference"); the server picks one of them (RFC 6455 §4.2.2). The gateway
takes ``ocpp1.6`` whenever the charger offers it, because that is the version it serves in full
(offline answers, durable queue, load capping, local lists); a charger that offers no 1.6 gets
its first 2.x choice. A dual-version charger on a capped or standalone site thus keeps working
as before 2.x existed. The cloud connection then offers that one version and no other (the
cloud must speak what the charger speaks: the gateway does not translate between versions).
A site without a cloud takes no 2.x charger: nothing could answer its transactions yet; nor
does a site that caps load: the gateway's profiles are 1.6 calls, so a 2.x charger would never
be capped (and the gateway sends no call of its own to a 2.x charger at all).

- ``ocpp1.6``: relayed, answered offline, queued, remapped (everything the README describes).
- ``ocpp2.0.1``: relayed untouched, checked against the 2.0.1 schemas; read into events by
  :mod:`edgegw.ocpp.interpret201`. Its connection mirrors its cloud connection (OCPP 2.0.1
  Part 4 §6.3): when the cloud is unreachable the charger is disconnected (1011 ``cloud
  unreachable``) and queues its own transaction events; nothing is answered for it locally.
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
