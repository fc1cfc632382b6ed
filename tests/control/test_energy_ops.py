"""energy.state and energy.decisions through the real control socket of a real gateway."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from edgegw.cli.output import plural
from edgegw.control import ControlClient, RemoteError
from edgegw.control.energy_ops import _ANSWER_BUDGET, _fit
from edgegw.daemon import Gateway
from edgegw.sim.charger import SimCharger
from edgegw.sim.meter import SimMeter
from tests.conftest import GatewayFactory, gateway_url

LIMIT = 40.0


@pytest.fixture
async def meter() -> AsyncIterator[SimMeter]:
    async with SimMeter("eastron-sdm630") as sim:
        sim.set_currents(10.0, 8.0, 6.0)
        yield sim


async def capped_gateway(make_gateway: GatewayFactory, meter: SimMeter) -> Gateway:
    gateway = await make_gateway(
        chargers=[{"id": "CP1", "max_current_a": 16, "fallback_current_a": 6}],
        site={
            "limit_a": LIMIT,
            "margin_a": 2,
            "fallback_ev_a": 10,
            "ramp_a_per_s": 50,
            "control_interval": 60,  # rounds run on events (and here by the test) only
        },
        buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.2}],
        auth={"unknown_cards": "accept"},
    )
    assert gateway.control is not None
    return gateway


async def test_state_shows_phases_meter_and_each_chargers_allocation(
    make_gateway: GatewayFactory, meter: SimMeter
) -> None:
    gateway = await capped_gateway(make_gateway, meter)
    controller = gateway.controller
    assert controller is not None
    sim = SimCharger("CP1", gateway_url(gateway), connectors=1, car_current_a=16)
    try:
        await sim.connect()
        await sim.boot()
        assert await sim.tap("04A1B2C3") is not None
        await controller.wait_until(
            lambda: (
                controller.state().meter == "ok"
                and any(s.limit_a for c in controller.state().chargers for s in c.sessions)
            )
        )
        async with await ControlClient.connect(gateway.config.control.socket) as client:
            state = await client.call("energy.state")
    finally:
        await sim.close()
    assert state["mode"] == "normal" and state["meter"] == "ok"
    assert state["limit_a"] == [LIMIT, LIMIT, LIMIT] and state["margin_a"] == 2
    assert state["grid_a"] is not None and state["grid_a"][0] >= 10.0  # measured per phase
    assert len(state["used_a"]) == 3 and len(state["budget_a"]) == 3  # allocated per phase
    (cp1,) = state["chargers"]
    assert cp1["id"] == "CP1" and cp1["connected"]
    (session,) = cp1["sessions"]
    assert session["connector"] == 1 and 6 <= session["limit_a"] <= 16
    assert state["meters"] == [
        {
            "name": "grid",
            "role": "site",
            "profile": "eastron-sdm630",
            "bus": "main",
            "health": "ok",
            "error_kind": None,
            "last_error": None,
            "consecutive_failures": 0,
        }
    ]
    json.dumps(state, allow_nan=False)  # strict JSON all the way


async def test_decisions_newest_since_and_bad_arguments(
    make_gateway: GatewayFactory, meter: SimMeter
) -> None:
    gateway = await capped_gateway(make_gateway, meter)
    controller = gateway.controller
    assert controller is not None
    # Once the meter's first sample was acted on, rounds come from here only.
    await controller.wait_until(lambda: controller.state().meter == "ok")
    for _ in range(5):
        controller.run_round()
    async with await ControlClient.connect(gateway.config.control.socket) as client:
        every = await client.call("energy.decisions", limit=10_000)
        assert every["count"] >= 5 and not every["truncated"]
        rounds = every["decisions"]
        assert [r["id"] for r in rounds] == sorted(r["id"] for r in rounds)  # oldest first
        first = rounds[0]
        assert set(first) == {"id", "at", "mode", "inputs", "outputs"}
        assert "grid_a" in first["inputs"] and "budget_a" in first["outputs"]

        newest = await client.call("energy.decisions", limit=2)
        assert [r["id"] for r in newest["decisions"]] == [r["id"] for r in rounds[-2:]]
        assert newest["count"] == 2 and not newest["truncated"]

        since = rounds[1]["at"]
        paged = await client.call("energy.decisions", since=since, limit=2)
        assert [r["id"] for r in paged["decisions"]] == [r["id"] for r in rounds[1:3]]
        window = await client.call("energy.decisions", since=since, until=rounds[3]["at"])
        assert [r["id"] for r in window["decisions"]] == [r["id"] for r in rounds[1:3]]

        for bad, why in (
            ({"limit": 0}, "limit must be between 1 and 10000"),
            ({"limit": "5"}, "argument 'limit' must be int"),
            ({"since": 10.0, "until": 5.0}, "until must be later than since"),
        ):
            with pytest.raises(RemoteError) as caught:
                await client.call("energy.decisions", **bad)
            assert caught.value.code == "bad_args" and why in caught.value.message


async def test_without_a_site_the_ops_say_so(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    assert gateway.control is not None and gateway.controller is None
    async with await ControlClient.connect(gateway.config.control.socket) as client:
        for op in ("energy.state", "energy.decisions"):
            with pytest.raises(RemoteError) as caught:
                await client.call(op)
            assert caught.value.code == "unavailable"
            assert "no [site] section" in caught.value.message


def test_an_answer_too_big_for_one_line_is_cut_and_says_so() -> None:
    big = "x" * (_ANSWER_BUDGET // 3)
    items: list[dict[str, Any]] = [{"id": i, "blob": big} for i in range(5)]
    oldest, cut = _fit(items, keep_newest=False)
    assert cut and [i["id"] for i in oldest] == [0, 1]
    newest, cut = _fit(items, keep_newest=True)
    assert cut and [i["id"] for i in newest] == [3, 4]
    assert _fit(items[:2], keep_newest=True) == (items[:2], False)


async def test_without_load_capping_the_decision_log_says_why_once(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway()
    async with await ControlClient.connect(gateway.config.control.socket) as client:
        with pytest.raises(RemoteError) as missing:
            await client.call("energy.decisions")
    # The TUI shows it after "No decision log:"; it must not say that again.
    assert missing.value.message.startswith("load capping is not configured")
    assert "decision log" not in missing.value.message


def test_counts_are_worded_for_one_and_many() -> None:
    assert plural(1, "entry", "entries") == "1 entry"
    assert plural(250, "entry", "entries") == "250 entries"
    assert plural(0, "charger") == "0 chargers"
    assert plural(None, "entry", "entries") == "? entries"
