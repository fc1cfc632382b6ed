"""Circuits through the load controller: simulated chargers over real websockets, a board of
16 A under a 34 A site, the state and the decision log showing the board."""

from __future__ import annotations

from tests.energy.test_controller import TAG, RigFactory, draws, rig  # noqa: F401


async def test_a_board_keeps_its_chargers_under_its_limit_and_the_rest_go_elsewhere(
    rig: RigFactory,  # noqa: F811
) -> None:
    r = await rig(
        [
            {"id": "A1", "circuit": "board", "max_current_a": 32},
            {"id": "A2", "circuit": "board", "max_current_a": 32},
            {"id": "S1", "max_current_a": 32},
        ],
        circuits=[{"name": "board", "limit_a": 16, "margin_a": 0}],
        limit_a=34,
    )
    a1, a2, s1 = [await r.connect(name) for name in ("A1", "A2", "S1")]
    for charger in (a1, a2, s1):
        await charger.tap(TAG)
    await r.settle()
    for _ in range(3):
        await r.round()
    # site: 34 - 2 margin - 4 building = 28 A for the cars; the board's two share its 16 A
    # and the car on the main switchboard gets the other 12 A, not a third of 28 A
    assert (draws(a1), draws(a2), draws(s1)) == (8, 8, 12)
    state = r.state()
    (board,) = state.circuits
    assert (board.name, board.parent, board.limit_a, board.margin_a) == (
        "board",
        None,
        (16.0, 16.0, 16.0),
        0.0,
    )
    assert board.used_a == (16.0, 16.0, 16.0)
    assert board.headroom_a == (0.0, 0.0, 0.0)
    assert state.as_dict()["circuits"][0]["name"] == "board"
    _, _, inputs, outputs = r.decisions.rows[-1]
    assert inputs["circuits"] == [
        {
            "name": "board",
            "parent": None,
            "limit_a": (16.0, 16.0, 16.0),
            "margin_a": 0.0,
            "held_a": (0.0, 0.0, 0.0),
            "fallback": False,
        }
    ]
    assert {row["charger"]: row["circuit"] for row in inputs["sessions"]} == {
        "A1": "board",
        "A2": "board",
        "S1": None,
    }
    assert outputs["circuits"] == [{"name": "board", "used_a": (16.0, 16.0, 16.0)}]


async def test_without_circuits_the_state_shows_none(rig: RigFactory) -> None:  # noqa: F811
    r = await rig([{"id": "CP1"}])
    cp1 = await r.connect("CP1")
    await cp1.tap(TAG)
    await r.settle()
    assert r.state().circuits == ()
    assert r.decisions.rows[-1][2]["circuits"] == []


async def test_a_charger_the_gateway_cannot_limit_counts_against_its_board(
    rig: RigFactory,  # noqa: F811
) -> None:
    """A charger without smart charging (zaptec-go over OCPP) is held at its max_current_a
    outside the allocator: the board it hangs on has only the rest for the others."""
    r = await rig(
        [
            {"id": "Z1", "circuit": "board", "model": "zaptec-go", "max_current_a": 10},
            {"id": "A1", "circuit": "board", "max_current_a": 16},
        ],
        circuits=[{"name": "board", "limit_a": 18, "margin_a": 0}],
        limit_a=63,
    )
    z1, a1 = [await r.connect(name) for name in ("Z1", "A1")]
    await z1.tap(TAG)
    await a1.tap(TAG)
    await r.settle()
    assert draws(a1) == 8  # 18 A - Z1's 10 A, though the site has room for 16
    (board,) = r.state().circuits
    assert board.used_a == (18.0, 18.0, 18.0)
    assert r.decisions.rows[-1][2]["circuits"][0]["held_a"] == (10.0, 10.0, 10.0)
