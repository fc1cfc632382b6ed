"""The allocator with circuits (distribution boards below the site): no circuit and not the
site over its limit on any phase, max-min fair across the tree, and no change without them."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgegw.energy.allocator import (
    AllocatorInputError,
    AllocatorParams,
    Circuit,
    Phase,
    Reason,
    Session,
    Site,
    SiteState,
    allocate,
    circuit_chains,
)
from edgegw.energy.planner import held
from tests.energy.test_allocator import EPS, FAST, ZERO, ev_budget, limits, phase_sum, states

L1, L2, L3 = Phase.L1, Phase.L2, Phase.L3

amps = st.integers(min_value=0, max_value=600).map(lambda i: i / 10)


@st.composite
def circuit_states(draw: st.DrawFn) -> tuple[SiteState, AllocatorParams]:
    """A random site state (as the allocator's own property tests draw it) with a random tree
    of circuits below the site and the sessions spread over it."""
    state, params = draw(states())
    circuits: list[Circuit] = []
    for index in range(draw(st.integers(min_value=0, max_value=5))):
        parent = draw(st.none() | st.sampled_from([c.name for c in circuits] or [None]))
        limit = st.integers(min_value=10, max_value=800).map(lambda i: i / 10)
        held = st.sampled_from([0.0, 0.0, 0.0, 3.0, 6.0, 20.0])
        circuits.append(
            Circuit(
                name=f"C{index}",
                limit_a=(draw(limit), draw(limit), draw(limit)),
                margin_a=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])),
                parent=parent,
                fixed_a=(draw(held), draw(held), draw(held)),
            )
        )
    names = [None, *(c.name for c in circuits)]
    sessions = tuple(replace(s, circuit=draw(st.sampled_from(names))) for s in state.sessions)
    return replace(state, circuits=tuple(circuits), sessions=sessions), params


def under(state: SiteState, name: str) -> set[tuple[str, int]]:
    chains = circuit_chains(state.circuits)
    return {s.key for s in state.sessions if s.circuit is not None and name in chains[s.circuit]}


def held_under(state: SiteState, name: str, phase: Phase) -> float:
    chains = circuit_chains(state.circuits)
    return sum(c.fixed_a[phase] for c in state.circuits if name in chains[c.name])


@settings(max_examples=400, deadline=None)
@given(circuit_states())
def test_no_circuit_and_not_the_site_over_its_limit_on_any_phase(
    drawn: tuple[SiteState, AllocatorParams],
) -> None:
    state, params = drawn
    result = allocate(state, params)
    budget = ev_budget(state)
    for p in Phase:
        assert phase_sum(result, p) <= budget[p] + EPS
    assert [c.name for c in result.circuits] == [c.name for c in state.circuits]
    for circuit, use in zip(state.circuits, result.circuits, strict=True):
        keys = under(state, circuit.name)
        for p in Phase:
            allocated = sum(
                a.limit_a for a in result.allocations if a.key in keys and p in a.phases
            )
            room = max(
                0.0, circuit.limit_a[p] - circuit.margin_a - held_under(state, circuit.name, p)
            )
            assert allocated <= room + EPS, (circuit.name, p, allocated, room)
            assert use.used_a[p] == pytest.approx(allocated + held_under(state, circuit.name, p))
            assert use.limit_a == circuit.limit_a


@settings(max_examples=300, deadline=None)
@given(circuit_states())
def test_no_session_between_zero_and_its_minimum(drawn: tuple[SiteState, AllocatorParams]) -> None:
    state, params = drawn
    result = allocate(state, params)
    by_key = {s.key: s for s in state.sessions}
    for a in result.allocations:
        assert a.limit_a == 0.0 or a.limit_a >= by_key[a.key].min_a - EPS, a


@settings(max_examples=300, deadline=None)
@given(states(), st.data())
def test_a_circuit_equal_to_the_site_changes_nothing(
    drawn: tuple[SiteState, AllocatorParams], data: st.DataObject
) -> None:
    """Any of the sessions on one circuit with the site's limit and margin: same limits and
    reasons as without circuits (it can never bind before the site does)."""
    state, params = drawn
    board = Circuit(name="main", limit_a=state.site.limit_a, margin_a=state.site.margin_a)
    on_board = tuple(
        replace(s, circuit=data.draw(st.sampled_from([None, "main"]))) for s in state.sessions
    )
    plain = allocate(state, params)
    tree = allocate(replace(state, circuits=(board,), sessions=on_board), params)
    assert tree.allocations == plain.allocations
    assert tree.budget_a == plain.budget_a


def board_state(
    sessions: tuple[Session, ...], *circuits: Circuit, limit: float = 40.0
) -> SiteState:
    return SiteState(
        site=Site(limit_a=(limit, limit, limit)),
        non_ev_a=ZERO,
        sessions=sessions,
        now=10_000.0,
        dt_s=1.0,
        circuits=circuits,
    )


def car(name: str, circuit: str | None) -> Session:
    return Session(name, 1, max_a=32.0, offered_a=6.0, started_at=0.0, circuit=circuit)


def test_a_car_on_a_full_board_leaves_the_rest_to_the_others() -> None:
    """Site 40 A, board A 16 A with two cars, one car directly on the site: A's cars share
    their 16 A and the third gets the 24 A left, not a third of 40 A."""
    sessions = (car("A1", "A"), car("A2", "A"), car("S", None))
    a = Circuit("A", limit_a=(16.0, 16.0, 16.0))
    # raises wait for the cuts in force: apply until nothing moves
    state = board_state(sessions, a)
    for _ in range(3):
        result = allocate(state, FAST)
        state = replace(
            state, sessions=tuple(s.applied(result.get(*s.key)) for s in state.sessions)
        )
    assert limits(result) == {"A1": 8.0, "A2": 8.0, "S": 24.0}
    assert result.get("S", 1).reason is Reason.FAIR_SHARE
    assert result.circuits[0].used_a == (16.0, 16.0, 16.0)


def test_nested_boards_and_rotation_each_count_on_their_own_phases() -> None:
    """A board under a board: the inner one's single-phase car on L2 (a charger wired
    L2/L3/L1) counts against both boards on L2 only."""
    outer = Circuit("outer", limit_a=(20.0, 20.0, 20.0))
    inner = Circuit("inner", limit_a=(10.0, 10.0, 10.0), parent="outer")
    sessions = (
        Session(
            "I",
            1,
            max_a=32.0,
            offered_a=32.0,
            started_at=0.0,
            circuit="inner",
            car_phases=frozenset({L2}),
        ),
        Session("O", 1, max_a=32.0, offered_a=32.0, started_at=0.0, circuit="outer"),
    )
    result = allocate(board_state(sessions, outer, inner, limit=100.0), FAST)
    assert limits(result) == {"I": 10.0, "O": 10.0}  # cuts are immediate
    outer_use, inner_use = result.circuits
    assert inner_use.used_a == (0.0, 10.0, 0.0)
    assert outer_use.used_a == (10.0, 20.0, 10.0)


def test_load_held_outside_the_allocator_counts_against_its_board_and_those_above() -> None:
    outer = Circuit("outer", limit_a=(20.0, 20.0, 20.0))
    inner = Circuit("inner", limit_a=(16.0, 16.0, 16.0), parent="outer", fixed_a=(8.0, 0.0, 0.0))
    sessions = (Session("O", 1, max_a=32.0, offered_a=32.0, started_at=0.0, circuit="outer"),)
    result = allocate(board_state(sessions, outer, inner, limit=100.0), FAST)
    assert limits(result) == {"O": 12.0}  # 20 A - the 8 A held on the inner board's L1
    assert result.circuits[0].used_a == (20.0, 12.0, 12.0)


@pytest.mark.parametrize(
    ("circuits", "message"),
    [
        ((Circuit("A", (10.0,) * 3), Circuit("A", (10.0,) * 3)), "circuit 'A' appears twice"),
        ((Circuit("A", (10.0,) * 3, parent="B"),), "parent 'B' is not a circuit"),
        (
            (Circuit("A", (10.0,) * 3, parent="B"), Circuit("B", (10.0,) * 3, parent="A")),
            "circuits form a cycle: A -> B -> A",
        ),
    ],
)
def test_a_broken_tree_is_refused_naming_the_circuit(
    circuits: tuple[Circuit, ...], message: str
) -> None:
    with pytest.raises(AllocatorInputError, match=message):
        board_state((), *circuits)


def test_a_session_on_an_unknown_circuit_is_refused() -> None:
    with pytest.raises(AllocatorInputError, match="session X/1: circuit 'nope' is not a circuit"):
        board_state((car("X", "nope"),))


@settings(max_examples=300, deadline=None)
@given(circuit_states())
def test_a_fair_share_session_is_held_by_a_full_constraint_where_it_has_the_most(
    drawn: tuple[SiteState, AllocatorParams],
) -> None:
    """Max-min fair across the tree: a session limited by its share (not by its own cap) sits
    on a phase of the site or of a circuit above it that is full, and no session of its
    priority there got more than it (but for one held at its minimum): nobody on a full board
    holds back headroom elsewhere. Every car runs at its maximum already (a round of cuts
    only), so no raise waits for a cut in force."""
    state, params = drawn
    state = replace(state, sessions=tuple(replace(s, offered_a=s.max_a) for s in state.sessions))
    result = allocate(state, params)
    budget = ev_budget(state)
    chains = circuit_chains(state.circuits)
    by_key = {s.key: s for s in state.sessions}

    def nodes(key: tuple[str, int]) -> list[str | None]:
        circuit = by_key[key].circuit
        return [None, *(chains[circuit] if circuit is not None else ())]

    def room(node: str | None, p: Phase) -> float:
        if node is None:
            return budget[p]
        c = next(c for c in state.circuits if c.name == node)
        return max(0.0, c.limit_a[p] - c.margin_a - held_under(state, node, p))

    for a in result.allocations:
        if a.reason is not Reason.FAIR_SHARE:
            continue
        s = by_key[a.key]
        holders = []
        for node in nodes(a.key):
            for p in a.phases:
                there = [b for b in result.allocations if node in nodes(b.key) and p in b.phases]
                used = sum(b.limit_a for b in there)
                if used + 0.1 * len(there) + EPS < room(node, p):
                    continue  # not full
                richer = [
                    b
                    for b in there
                    if by_key[b.key].priority is s.priority
                    and b.limit_a > a.limit_a + 0.1 + EPS
                    and b.limit_a > math.ceil(by_key[b.key].min_a * 10 - EPS) / 10 + EPS
                ]
                if not richer:
                    holders.append((node, p))
        assert holders, (a, result.notes)


def test_a_raise_held_back_after_a_failed_meter_read_lowers_its_boards_sum_too() -> None:
    """The planner's ``held`` (no raise while the meter's last read failed) keeps each
    circuit's allocated sum in step with the limits it leaves."""
    outer = Circuit("outer", limit_a=(30.0, 30.0, 30.0))
    inner = Circuit("inner", limit_a=(20.0, 20.0, 20.0), parent="outer")
    sessions = (
        Session("I", 1, max_a=32.0, offered_a=6.0, started_at=0.0, circuit="inner"),
        Session("O", 1, max_a=32.0, offered_a=32.0, started_at=0.0, circuit="outer"),
    )
    result = allocate(board_state(sessions, outer, inner, limit=100.0), FAST)
    assert limits(result) == {"I": 6.0, "O": 15.0}  # I's raise waits for O's cut
    state = replace(
        board_state(sessions, outer, inner, limit=100.0),
        sessions=tuple(s.applied(result.get(*s.key)) for s in sessions),
    )
    raised = allocate(state, FAST)
    assert limits(raised) == {"I": 15.0, "O": 15.0}
    kept = held(raised, state.sessions)
    assert limits(kept) == {"I": 6.0, "O": 15.0}
    assert [c.used_a for c in kept.circuits] == [(21.0, 21.0, 21.0), (6.0, 6.0, 6.0)]
    assert kept.used_a == (21.0, 21.0, 21.0)


@settings(max_examples=400, deadline=None)
@given(circuit_states())
def test_a_raise_under_a_board_uses_only_current_free_while_the_others_run_at_their_old_limits(
    drawn: tuple[SiteState, AllocatorParams],
) -> None:
    """Make-before-break at every board: a board has no meter, and the chargers under it keep
    their limits in force until they acknowledge the new ones, so each session counted at the
    higher of its limit in force and its new limit stays within the board's room on every
    phase (whenever the limits in force did)."""
    state, params = drawn
    result = allocate(state, params)
    chains = circuit_chains(state.circuits)
    by_key = {s.key: s for s in state.sessions}
    for circuit in state.circuits:
        for p in Phase:
            room = max(
                0.0, circuit.limit_a[p] - circuit.margin_a - held_under(state, circuit.name, p)
            )
            on = [
                (by_key[a.key], a)
                for a in result.allocations
                if p in a.phases
                and (c := by_key[a.key].circuit) is not None
                and circuit.name in chains[c]
            ]
            if sum(s.offered_a for s, _ in on) > room + EPS:
                continue  # over before the round: only cuts can follow
            worst = sum(max(s.offered_a, a.limit_a) for s, a in on)
            assert worst <= room + EPS, (circuit.name, p, worst, room)


@pytest.mark.parametrize("elsewhere", [None, "B"])
def test_a_session_short_only_on_a_full_board_holds_back_no_start_elsewhere(
    elsewhere: str | None,
) -> None:
    """A2 has waited longest but board A (10 A) is full with A1 running: its reservation holds
    back starts on A only. S, which arrived later on the site (or on board B), starts."""
    now = 10_000.0
    sessions = (
        Session("A1", 1, max_a=32.0, offered_a=10.0, started_at=now - 10, circuit="A"),
        Session("A2", 1, max_a=32.0, offered_a=0.0, arrived_at=now - 100, circuit="A"),
        Session("S", 1, max_a=32.0, offered_a=0.0, arrived_at=now - 50, circuit=elsewhere),
    )
    boards = [Circuit("A", limit_a=(10.0, 10.0, 10.0)), Circuit("B", limit_a=(16.0, 16.0, 16.0))]
    result = allocate(board_state(sessions, *boards, limit=100.0), FAST)
    assert result.get("A2", 1).limit_a == 0.0
    assert result.get("A2", 1).reason is Reason.PAUSED_NO_CAPACITY
    assert result.get("A1", 1).limit_a == 10.0
    assert result.get("S", 1).limit_a == (32.0 if elsewhere is None else 16.0)
