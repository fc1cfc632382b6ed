"""The current in force on a connector, from the profiles its charger acknowledged.

Pure arithmetic of the load controller, no clock and no I/O:

* :func:`offered_a`: what a connector may draw now (A per phase), the composite of the
  gateway profiles the charger *acknowledged* (what the allocator counts as in force);
* :func:`meaningful_change`: whether a newly planned profile is worth sending;
* :func:`rescaled`: an unsent profile's split kept at the limit the charger really has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from edgegw.energy.chargermodels import Purpose
from edgegw.energy.profiles import ProfileCommand, ProfileKey

EPS: Final = 1e-9
"""Amperes closer than this are equal."""


def offered_a(
    acked: Mapping[ProfileKey, ProfileCommand],
    connector: int,
    *,
    session: bool,
    transaction_id: int | None,
    unlimited_a: float,
) -> float:
    """The limit in force on ``connector``: the composite of the acknowledged profiles.

    The charger obeys the minimum of its ChargePointMaxProfile and the Tx profile in force,
    where a TxProfile (of this connector, and of this transaction when it names one and the
    connector has a ``session``) beats the connector's own TxDefaultProfile, which beats the
    charger-wide one (connector 0). Without any, ``unlimited_a`` (the configured maximum).
    """
    cp: float | None = None
    tx: float | None = None
    tx_default_own: float | None = None
    tx_default_all: float | None = None
    for key, cmd in acked.items():
        value = cmd.covers.get(connector, cmd.default_a)
        if value is None:
            continue
        if key.purpose is Purpose.CHARGE_POINT_MAX:
            cp = value
        elif key.purpose is Purpose.TX and key.connector_id == connector:
            if not session or cmd.transaction_id in (None, transaction_id):
                tx = value
        elif key.purpose is Purpose.TX_DEFAULT:
            if key.connector_id == connector:
                tx_default_own = value
            elif key.connector_id == 0:
                tx_default_all = value
    tx_part = (
        tx if tx is not None else tx_default_own if tx_default_own is not None else tx_default_all
    )
    limits = [v for v in (cp, tx_part) if v is not None]
    return min(limits) if limits else unlimited_a


def meaningful_change(old: ProfileCommand, new: ProfileCommand, min_change_a: float) -> bool:
    """Is ``new`` worth sending in place of ``old``: a cut always, a start or a pause always,
    another transaction always, a raise when it is at least ``min_change_a``."""
    if old.fingerprint == new.fingerprint:
        return False
    if old.transaction_id != new.transaction_id:
        return True
    if new.limit_a < old.limit_a - EPS:
        return True  # a cut is always sent
    if old.limit_a <= 0 or new.limit_a <= 0:
        return True
    return new.limit_a - old.limit_a >= min_change_a - EPS


def rescaled(amps: float, planned: float, kept: float) -> float:
    """``amps`` of a profile planned at ``planned`` A, for the same profile kept at ``kept``."""
    if amps == planned or planned <= 0:
        return kept if amps == planned else amps
    return amps / planned * kept  # amps <= planned: no overflow for subnormal limits


def kept_command(old: ProfileCommand, planned: ProfileCommand) -> ProfileCommand:
    """``old`` (still on the charger) split between connectors as ``planned`` splits its own
    limit: the split adds up to the old limit, what the charger really has (plan values are
    all proportional to the profile's limit, so scaling them is exact)."""
    return ProfileCommand(
        old.key,
        old.limit_a,
        old.payload,
        {c: rescaled(a, planned.limit_a, old.limit_a) for c, a in planned.covers.items()},
        None
        if planned.default_a is None
        else rescaled(planned.default_a, planned.limit_a, old.limit_a),
        old.transaction_id,
    )
