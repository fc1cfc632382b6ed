"""When a connector has a session: the one rule the load controller and the live state follow.

Pure functions of the events (:mod:`edgegw.ocpp.events`); each consumer keeps its own records.
Statuses are OCPP 1.6's names (an OCPP 2.0.1 interpreter maps its own to them).

- **Active** (:data:`ACTIVE_STATUSES`: ``Charging``, ``SuspendedEV``, ``SuspendedEVSE``): a
  transaction is under way and the car may draw. A consumer that allocates current opens a
  session on one even when it missed the StartTransaction.
- **Idle** (:data:`IDLE_STATUSES`: ``Available``, ``Unavailable``, ``Faulted``, ``Finishing``,
  ``Reserved``): nothing draws here and no transaction goes on (``Finishing``: OCPP 1.6 says the
  transaction has stopped and the cable is not yet out; ``Faulted``: "not available for energy
  delivery"). An idle status **ends the connector's session**, whether or not a
  StopTransaction matched it (an Alfen that switches to the int64-maximum id mid-session stops
  with an id no session has). While a connector's last status is idle, a MeterValues carrying a
  transaction id **does not open** a session (an Alfen replays its offline backlog with such
  ids, ``hardware/chargers/alfen-eve.toml``): only a StartTransaction or an active status does.
- ``Preparing`` (a car plugged in or a card presented) and any status not named here: neither;
  a session goes on as it was.

``Finishing`` ends the session's *load* at once (nothing more flows), but a consumer that keeps
the session's *record* (who charged, the energy, the stop's reason: the live state) keeps it
until the StopTransaction that usually follows within a second carries the meter reading and
the reason, or until the next idle status (:func:`record_ends`).

A :class:`~edgegw.ocpp.events.SessionStopped` ends the session whose transaction id equals its
own. A stop without a readable id (None) ends **none**: sessions without an id (a Start answered
without one, an OCPP 2.0.1 id a consumer cannot read) would all match "None == None"; the idle
status that follows the stop ends the right one.
"""

from __future__ import annotations

from typing import Final

ACTIVE_STATUSES: Final = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})
"""Statuses with a transaction under way (a session is opened on one, if none)."""
IDLE_STATUSES: Final = frozenset({"Available", "Unavailable", "Faulted", "Finishing", "Reserved"})
"""Statuses without a transaction: one ends the connector's session."""


def status_opens(status: str | None) -> bool:
    """A session exists on a connector with this status (open one if there is none)."""
    return status in ACTIVE_STATUSES


def status_ends(status: str | None) -> bool:
    """This status ends the connector's session."""
    return status in IDLE_STATUSES


def measured_opens(last_status: str | None, transaction_id: object) -> bool:
    """Whether a measurement with ``transaction_id`` opens a session on a connector that has
    none and whose last status was ``last_status`` (None: not heard yet)."""
    return transaction_id is not None and last_status not in IDLE_STATUSES


def stop_ends(stop_id: object, session_id: object) -> bool:
    """Whether a stop with ``stop_id`` ends a session with ``session_id`` (never on None)."""
    return stop_id is not None and stop_id == session_id


def record_ends(status: str | None) -> bool:
    """This status ends a session's record: an idle status other than ``Finishing`` (after
    ``Finishing`` the StopTransaction with the meter reading and the reason is still to come)."""
    return status in IDLE_STATUSES and status != "Finishing"
