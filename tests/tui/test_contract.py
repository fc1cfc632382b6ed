"""The TUI's canned daemon answers are the daemon's own: a contract test.

The fakes (``tests/tui/fakes.py``) are built with the daemon's snapshot types; here they are
tied to what a *real* live state on a real gateway publishes (a charger with a session, a site
meter, load capping): the same fields, read back by the TUI's reader to the same values. A field
added to, renamed in or removed from the snapshot fails this test until the fakes follow.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from edgegw.auth.idtags import parse_card_id
from edgegw.auth.locallist import Card
from edgegw.live.changes import EventKind
from edgegw.live.snapshot import LiveSnapshot
from edgegw.sim.charger import SimCharger
from edgegw.sim.meter import SimMeter
from edgegw.tui.model import read_snapshot
from tests.conftest import gateway_url
from tests.tui.conftest import ALICE, Site
from tests.tui.fakes import live_events, many_chargers, site_snapshot

MakeSite = Callable[..., Awaitable[Site]]


def keys_of(value: Any, path: str = "") -> set[str]:
    """Every key path of a JSON document (list items share ``[]``)."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(f"{path}.{k}")
            out |= keys_of(v, f"{path}.{k}")
    elif isinstance(value, list):
        for item in value:
            out |= keys_of(item, f"{path}[]")
    return out


def test_the_fakes_are_snapshots_the_tui_reads_back_exactly() -> None:
    for fake in (site_snapshot(), many_chargers(5)):
        document = json.loads(json.dumps(fake))
        assert read_snapshot(document).as_dict() == fake


async def test_the_fakes_have_the_shape_of_a_real_live_state(make_site: MakeSite) -> None:
    async with SimMeter("eastron-sdm630") as meter:
        meter.set_currents(10.0, 11.0, 12.0)
        site = await make_site(
            site={"limit_a": 32, "margin_a": 2},
            buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
            meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.1}],
            circuits=[{"name": "level-1", "limit_a": 25}],
            chargers=[
                {"id": "CP1", "label": "Bay 1", "circuit": "level-1"},
                {"id": "CP2", "label": "Bay 2"},
            ],
        )
        assert site.gateway.authorizer is not None
        await site.gateway.authorizer.add_card(Card(parse_card_id(ALICE), owner="Alice"))
        async with SimCharger("CP1", gateway_url(site.gateway), connectors=1) as cp:
            await cp.boot()
            await cp.status(1, "Preparing")
            assert await cp.tap(ALICE) is not None
            await cp.meter_values(1)
            await cp.authorize("DEADBEEF")
            live = site.live
            while live.site().meter is None or live.site().current_a is None:
                await live.wait_refreshed()
            snapshot = live.snapshot()
    real = json.loads(json.dumps(snapshot.as_dict()))
    cp1 = next(c for c in real["chargers"] if c["id"] == "CP1")
    assert cp1["connectors"][0]["session"] is not None, "the real site has a session"
    assert real["site"]["meter"] is not None and real["site"]["limit_a"] is not None
    assert real["circuits"][0]["chargers"] == ["CP1"], "the real site has a board"
    assert cp1["ocpp_version"] == "ocpp1.6" and cp1["circuit"] == "level-1"
    # The TUI reads the real document back to the daemon's own value ...
    assert read_snapshot(real) == LiveSnapshot.from_dict(real) == snapshot
    # ... and the fakes carry exactly the fields the real one does, at every level (the
    # cloud links are a count per link state: their keys are data, not fields).
    fake = site_snapshot()
    for document in (fake, real):
        document["site"]["links"] = {}
    assert keys_of(fake) == keys_of(real)
    # The live events the fakes stand for have the fields the real ones have.
    real_events = {e.kind.value: set(e.as_dict()) for e in live.events()}
    assert {EventKind.SESSION_STARTED.value, EventKind.CARD_REFUSED.value} <= set(real_events)
    for fake_event in live_events():
        assert set(fake_event) == real_events[fake_event["event"]], fake_event["event"]
