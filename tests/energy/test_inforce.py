"""The current in force on a connector (``edgegw.energy.inforce``), directly.

What the allocator counts as in force is the composite of the profiles the charger
*acknowledged*: never more than any of them allows, a TxProfile before a TxDefaultProfile, the
connector's own TxDefaultProfile before the charger-wide one.
"""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edgegw.energy.chargermodels import Purpose, load_models
from edgegw.energy.inforce import kept_command, meaningful_change, offered_a, rescaled
from edgegw.energy.profiles import (
    ConnectorLimit,
    ProfileCommand,
    ProfileKey,
    build_set_charging_profile,
    plan_profiles,
)

MODELS = load_models(Path(__file__).resolve().parents[2] / "hardware" / "chargers")
GENERIC = MODELS["generic-ocpp16"]
NOW = 1_700_000_000.0
MAX = 32.0


def cmd(
    connector: int,
    purpose: Purpose,
    limit: float,
    *,
    covers: dict[int, float] | None = None,
    default: float | None = None,
    tx: int | None = None,
) -> ProfileCommand:
    key = ProfileKey(connector, purpose)
    payload = build_set_charging_profile(GENERIC, key, limit, phases=3, now=NOW, transaction_id=tx)
    return ProfileCommand(key, limit, payload, covers or {}, default, tx)


def acked(*commands: ProfileCommand) -> dict[ProfileKey, ProfileCommand]:
    return {c.key: c for c in commands}


def test_nothing_acknowledged_is_the_configured_maximum() -> None:
    assert offered_a({}, 1, session=True, transaction_id=7, unlimited_a=MAX) == MAX


def test_the_minimum_of_charge_point_max_and_the_tx_part() -> None:
    profiles = acked(
        cmd(0, Purpose.CHARGE_POINT_MAX, 20, default=20.0),
        cmd(1, Purpose.TX_DEFAULT, 10, covers={1: 10.0}),
    )
    assert offered_a(profiles, 1, session=True, transaction_id=None, unlimited_a=MAX) == 10
    profiles = acked(
        cmd(0, Purpose.CHARGE_POINT_MAX, 8, default=8.0),
        cmd(1, Purpose.TX_DEFAULT, 10, covers={1: 10.0}),
    )
    assert offered_a(profiles, 1, session=True, transaction_id=None, unlimited_a=MAX) == 8


def test_a_tx_profile_beats_tx_default_profiles_whatever_their_limits() -> None:
    profiles = acked(
        cmd(0, Purpose.TX_DEFAULT, 6, default=6.0),
        cmd(1, Purpose.TX_DEFAULT, 8, covers={1: 8.0}),
        cmd(1, Purpose.TX, 16, covers={1: 16.0}, tx=7),
    )
    assert offered_a(profiles, 1, session=True, transaction_id=7, unlimited_a=MAX) == 16


def test_a_tx_profile_of_another_transaction_does_not_count() -> None:
    profiles = acked(
        cmd(1, Purpose.TX_DEFAULT, 8, covers={1: 8.0}),
        cmd(1, Purpose.TX, 16, covers={1: 16.0}, tx=7),
    )
    assert offered_a(profiles, 1, session=True, transaction_id=8, unlimited_a=MAX) == 8
    # Without a session on the connector, its TxProfile still counts (what it had).
    assert offered_a(profiles, 1, session=False, transaction_id=None, unlimited_a=MAX) == 16


def test_the_connectors_own_tx_default_beats_the_charger_wide_one() -> None:
    profiles = acked(
        cmd(0, Purpose.TX_DEFAULT, 6, default=6.0),
        cmd(2, Purpose.TX_DEFAULT, 12, covers={2: 12.0}),
    )
    assert offered_a(profiles, 2, session=True, transaction_id=None, unlimited_a=MAX) == 12
    assert offered_a(profiles, 1, session=True, transaction_id=None, unlimited_a=MAX) == 6


def test_a_profile_that_does_not_cover_the_connector_does_not_count() -> None:
    # A per-connector TxDefaultProfile of connector 1 says nothing about connector 2.
    profiles = acked(cmd(1, Purpose.TX_DEFAULT, 8, covers={1: 8.0}))
    assert offered_a(profiles, 2, session=True, transaction_id=None, unlimited_a=MAX) == MAX


limits = st.floats(min_value=0.0, max_value=64.0, allow_nan=False)


@given(
    cp=st.none() | limits,
    tx_default_all=st.none() | limits,
    tx_default_own=st.none() | limits,
    tx=st.none() | limits,
)
def test_never_above_any_acknowledged_profile_that_applies(
    cp: float | None,
    tx_default_all: float | None,
    tx_default_own: float | None,
    tx: float | None,
) -> None:
    commands = []
    if cp is not None:
        commands.append(cmd(0, Purpose.CHARGE_POINT_MAX, cp, default=cp))
    if tx_default_all is not None:
        commands.append(cmd(0, Purpose.TX_DEFAULT, tx_default_all, default=tx_default_all))
    if tx_default_own is not None:
        commands.append(cmd(1, Purpose.TX_DEFAULT, tx_default_own, covers={1: tx_default_own}))
    if tx is not None:
        commands.append(cmd(1, Purpose.TX, tx, covers={1: tx}, tx=7))
    offered = offered_a(acked(*commands), 1, session=True, transaction_id=7, unlimited_a=MAX)
    assert offered >= 0
    if cp is not None:
        assert offered <= cp
    tx_part = next((v for v in (tx, tx_default_own, tx_default_all) if v is not None), None)
    if tx_part is not None:
        assert offered <= tx_part
        assert offered == (tx_part if cp is None else min(cp, tx_part))
    elif cp is None:
        assert offered == MAX


@given(
    st.lists(st.floats(min_value=0.0, max_value=32.0, allow_nan=False), min_size=1, max_size=4),
    st.floats(min_value=0.0, max_value=64.0, allow_nan=False),
)
def test_a_kept_profile_splits_what_the_charger_really_has(
    session_limits: list[float], kept_limit: float
) -> None:
    # A session came or went: the plan splits its new total, but the raise is not worth
    # sending; the old profile stays, and its split must add up to the old limit.
    sessions = [
        ConnectorLimit(connector_id=i + 1, limit_a=a, phases=3)
        for i, a in enumerate(session_limits)
    ]
    (planned,) = [
        c
        for c in plan_profiles(
            GENERIC, sessions, connectors=(), safe_limit_a=6, charger_phases=3, min_a=6, now=NOW
        )
        if c.key.purpose is Purpose.CHARGE_POINT_MAX
    ]
    old = cmd(0, Purpose.CHARGE_POINT_MAX, kept_limit, default=kept_limit)
    kept = kept_command(old, planned)
    assert kept.limit_a == kept_limit and kept.payload is old.payload
    if planned.limit_a > 0:
        assert math.isclose(sum(kept.covers.values()), kept_limit, abs_tol=1e-6)


def test_rescaled() -> None:
    assert rescaled(8, 16, 10) == 5
    assert rescaled(16, 16, 10) == 10  # the whole profile
    assert rescaled(0, 0, 10) == 10  # planned at 0: the whole kept limit
    assert rescaled(3, 0, 10) == 3


def test_only_meaningful_changes_are_sent() -> None:
    old = cmd(1, Purpose.TX_DEFAULT, 10, covers={1: 10.0})
    assert not meaningful_change(old, cmd(1, Purpose.TX_DEFAULT, 10), 2.0)  # same profile
    assert meaningful_change(old, cmd(1, Purpose.TX_DEFAULT, 9.9), 2.0)  # a cut: always
    assert not meaningful_change(old, cmd(1, Purpose.TX_DEFAULT, 11.9), 2.0)  # small raise
    assert meaningful_change(old, cmd(1, Purpose.TX_DEFAULT, 12), 2.0)
    paused = cmd(1, Purpose.TX_DEFAULT, 0)
    assert meaningful_change(paused, cmd(1, Purpose.TX_DEFAULT, 0.5), 2.0)  # a start: always
    tx = cmd(1, Purpose.TX, 10, tx=7)
    assert meaningful_change(tx, cmd(1, Purpose.TX, 10, tx=8), 2.0)  # another transaction


@given(
    st.floats(min_value=0.0, max_value=64.0, allow_nan=False),
    st.floats(min_value=0.0, max_value=64.0, allow_nan=False),
)
def test_a_cut_is_never_held_back(before: float, after: float) -> None:
    old = cmd(1, Purpose.TX_DEFAULT, before)
    new = cmd(1, Purpose.TX_DEFAULT, after)
    if after < before - 1e-6 and new.fingerprint != old.fingerprint:
        assert meaningful_change(old, new, 5.0)
