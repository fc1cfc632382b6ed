"""Sessions held outside the allocator count at what they may still draw.

A caretaker pause, a cloud limit below the minimum or a charger that cannot pause holds a
session at a fixed limit outside the allocator. The charger keeps drawing at its limit in force
until it acknowledges the new one; a board has no meter, and a meter that sees only the building
(or none at all, in fallback) does not see the cars either: nothing would catch current handed to
others before the cut is in force. So, in every round, on every board and at the site in those
modes, every session counted at the higher of its limit in force and its new limit stays within
the budget (when it was within it before the round).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edgegw.config import parse_config
from edgegw.energy.allocator import PerPhase, Phase
from edgegw.energy.heldboards import held_over_boards
from edgegw.energy.registers import Reading
from edgegw.energy.sitemodel import SiteModel
from edgegw.energy.siterecords import Tuning
from tests.energy.test_planner import ALL_MODELS, WALL, Sample, Site, connected

EPS = 1e-6
SITE_LIMIT, SITE_MARGIN = 40.0, 2.0
BOARD = "A"


@dataclass
class BoardSite(Site):
    """A :class:`Site` with one board (no meter of its own) and a chosen meter role."""

    board_a: float = 20.0
    meter_role: str = "grid"
    site: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        config = parse_config(
            {
                "site": {
                    "limit_a": SITE_LIMIT,
                    "margin_a": SITE_MARGIN,
                    "ramp_a_per_s": 100,
                    "meter_role": self.meter_role,
                    **self.site,
                },
                "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
                "meters": [{"profile": "eastron-sdm630"}],
                "circuits": [{"name": BOARD, "limit_a": self.board_a, "margin_a": 0}],
                "chargers": self.chargers,
            }
        )
        self.model = SiteModel(
            config, ALL_MODELS, clock=lambda: self.now, wall_clock=lambda: WALL, tuning=Tuning()
        )

    def building_sample(self) -> Sample:
        """What a meter that measures only the building reads."""
        b = self.building
        return Sample(Reading(current_l1_a=b[0], current_l2_a=b[1], current_l3_a=b[2]), self.now)

    def in_force(self) -> dict[tuple[str, int], float]:
        return {
            (ch.id, s.connector): ch.offered(s.connector)
            for ch in self.model.chargers.values()
            for s in ch.sessions.values()
        }

    def worst(self, before: dict[tuple[str, int], float], board: bool) -> PerPhase:
        """Per phase, the sessions (on the board, or all) at max(limit in force, new limit)."""
        total = [0.0, 0.0, 0.0]
        for ch in self.model.chargers.values():
            if board and ch.config.circuit != BOARD:
                continue
            for s in ch.sessions.values():
                amps = max(before[(ch.id, s.connector)], s.limit_a or 0.0)
                for p in s.car_phases or ch.site_phases:
                    total[p] += amps
        return (total[0], total[1], total[2])


def _sums(site: BoardSite, amps: dict[tuple[str, int], float], board: bool) -> PerPhase:
    total = [0.0, 0.0, 0.0]
    for ch in site.model.chargers.values():
        if board and ch.config.circuit != BOARD:
            continue
        for s in ch.sessions.values():
            for p in s.car_phases or ch.site_phases:
                total[p] += amps[(ch.id, s.connector)]
    return (total[0], total[1], total[2])


Action = tuple[str, int]

KINDS = ["settle", "settle", "round", "ack", "pause", "pause", "lower", "resume", "lose", "find"]
"""settle: every charger accepts what is pending, then a round; round: a round alone."""
actions = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 3)), max_size=25)


@settings(max_examples=300, deadline=None)
@example(  # the reviewer's case: a caretaker pause on a board of two
    chargers=[(True, True, 16), (True, True, 16)],
    board_extra=0,
    role="grid",
    fallback=10,
    steps=[("settle", 0), ("settle", 0), ("settle", 0), ("pause", 0), ("round", 0)],
)
@given(
    chargers=st.lists(
        st.tuples(st.booleans(), st.booleans(), st.integers(10, 32)), min_size=2, max_size=4
    ),
    board_extra=st.integers(0, 20),
    role=st.sampled_from(["grid", "non_ev"]),
    fallback=st.integers(0, 38),
    steps=actions,
)
def test_held_sessions_count_at_their_limit_in_force_until_the_cut_is_acknowledged(
    chargers: list[tuple[bool, bool, int]],
    board_extra: int,
    role: str,
    fallback: int,
    steps: list[Action],
) -> None:
    on_board = sum(1 for on, _, _ in chargers if on)
    site = BoardSite(
        [
            {
                "id": f"CP{i}",
                "max_current_a": amps,
                **({"circuit": BOARD} if on else {}),
                **({} if can_pause else {"model": "no-pause"}),
            }
            for i, (on, can_pause, amps) in enumerate(chargers)
        ],
        board_a=min(SITE_LIMIT, 6.0 * on_board + board_extra + 1),
        meter_role=role,
        site={"fallback_ev_a": fallback},
    )
    ids = [f"CP{i}" for i in range(len(chargers))]
    connected(site, *ids)
    for i, cid in enumerate(ids):
        site.plug(cid, i + 1)
    meter = True
    board_room = site.board_a
    for what, i in steps:
        cid = ids[i % len(ids)]
        ch = site.model.chargers[cid]
        if what == "ack":
            while ch.pending():
                site.model.profile_acked(ch, ch.pending()[0])
        elif what == "pause":
            site.model.set_charger_max(cid, 0.0 if ch.model.can_pause else ch.min_a)
        elif what == "lower":
            site.model.set_charger_max(cid, ch.min_a)
        elif what == "resume":
            site.model.set_charger_max(cid, None)
        elif what in ("lose", "find"):
            meter = what == "find"
        else:
            before = site.in_force()
            if what == "settle":
                site.ack_all()
                before = site.in_force()
            sample = None if not meter else site.building_sample() if role == "non_ev" else "meter"
            board_was = _sums(site, before, board=True)
            site_was = _sums(site, before, board=False)
            site.round(sample=sample)
            board_now = site.worst(before, board=True)
            if all(board_was[p] <= board_room + EPS for p in Phase):
                for p in Phase:
                    assert board_now[p] <= board_room + EPS, (p, board_was, board_now)
            if not meter:
                budget = [float(fallback)] * 3
            elif role == "non_ev":
                budget = [SITE_LIMIT - SITE_MARGIN - site.building[p] for p in Phase]
            else:
                continue  # a grid meter sees the cars: it catches what they draw
            if all(site_was[p] <= budget[p] + EPS for p in Phase):
                site_now = site.worst(before, board=False)
                for p in Phase:
                    assert site_now[p] <= budget[p] + EPS, (p, site_was, site_now, budget)


def test_a_board_the_held_load_alone_can_fill_is_named_at_start_and_on_reload(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Board A (16 A) hangs on board top (40 A): a charger the gateway cannot limit (16 A) and
    one that cannot pause (6 A) under A hold 22 A there, which nothing can cut. A is named
    (with both chargers), top is not; a reload that moves the stubborn one off A clears it."""
    chargers: list[dict[str, Any]] = [
        {"id": "CP1", "model": "easee", "max_current_a": 16, "circuit": "A"},
        {"id": "CP2", "model": "no-pause", "circuit": "A"},
        {"id": "CP3", "circuit": "A"},
    ]
    raw: dict[str, Any] = {
        "site": {"limit_a": SITE_LIMIT, "margin_a": SITE_MARGIN},
        "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
        "meters": [{"profile": "eastron-sdm630"}],
        "circuits": [
            {"name": "top", "limit_a": 40},
            {"name": "A", "limit_a": 16, "margin_a": 0, "parent": "top"},
        ],
        "chargers": chargers,
    }
    caplog.set_level(logging.WARNING, logger="edgegw.energy.controller")
    model = SiteModel(
        parse_config(raw), ALL_MODELS, clock=lambda: 0.0, wall_clock=lambda: WALL, tuning=Tuning()
    )
    problems = held_over_boards(model.config.circuits, model.site, model.chargers.values())
    assert len(problems) == 1
    assert "circuit 'A'" in problems[0] and "22 A on L1" in problems[0]
    assert "CP1 (cannot be limited: 16 A)" in problems[0]
    assert "CP2 (cannot pause: 6 A)" in problems[0] and "CP3" not in problems[0]
    assert [m for m in caplog.messages if "circuit 'A'" in m] == problems
    caplog.clear()
    moved = {**raw, "chargers": [chargers[0], {"id": "CP2", "model": "no-pause"}, chargers[2]]}
    model.use_config(parse_config(moved))
    assert held_over_boards(model.config.circuits, model.site, model.chargers.values()) == []
    assert not [m for m in caplog.messages if "circuit 'A'" in m]
