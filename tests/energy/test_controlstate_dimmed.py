"""A dimmed circuit's state (``controlstate.circuit_states``): the limit the round used and
what it left, never the §14a grant alone as the limit (which showed negative headroom in
``energy state``, the TUI and MQTT: the round counts the grant plus the margin and the board's
other load)."""

from __future__ import annotations

import pytest

from edgegw.config.limits import LimitConfig
from edgegw.energy.controlstate import circuit_states
from edgegw.energy.external import grant_for
from tests.energy.test_board_meters import Park

DSO = {"name": "dso", "source": "gpio", "path": "/tmp/x", "circuit": "steuve", "para14a": True}


def test_a_dimmed_board_shows_the_rounds_limit_and_no_negative_headroom() -> None:
    park = Park(
        circuits=[{"name": "steuve", "limit_a": 50, "margin_a": 2, "meter": "m1"}],
        chargers=[{"id": "CP1", "circuit": "steuve", "max_current_a": 32}],
    )
    park.model.config = park.model.config.model_copy(
        update={"limits": (LimitConfig.model_validate(DSO),)}
    )
    park.plug("CP1", 1)
    park.own = {"steuve": (20.0, 20.0, 20.0)}
    park.settle()
    grant = grant_for(park.model.config.limits[0], park.model.config)
    park.model.lower_limit("dso", "steuve", grant.limit_a)
    park.settle()
    (state,) = circuit_states(park.model)
    used = park.model.last_result
    assert used is not None
    (use,) = used.circuits
    assert state.limit_a == use.limit_a  # grant + margin + the board's other load
    assert state.used_a == use.used_a
    assert state.headroom_a is not None
    assert min(state.headroom_a) >= -1e-9, state
    assert state.limit_a[0] == pytest.approx(grant.limit_a[0] + 2.0 + 20.0)
