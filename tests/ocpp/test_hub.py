"""The event hub: one reading per call, delivered in the composed order, whatever fails."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from edgegw.auth.learn import CardLearner
from edgegw.auth.pushready import PushWhenReady
from edgegw.commission.observer import CommissionObserver
from edgegw.energy.sampling import MeterSampling
from edgegw.livestate import LiveState
from edgegw.ocpp.events import (
    CallExchanged,
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    Event,
)
from edgegw.ocpp.hub import EventHub
from edgegw.sim.charger import SimCharger
from edgegw.sim.meter import SimMeter
from tests.conftest import GatewayFactory, gateway_url

BOOT = ({"chargePointVendor": "V", "chargePointModel": "M"}, {"status": "Accepted"})


class Recorder:
    def __init__(self, name: str, log: list[tuple[str, str]], *, fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    def handle(self, event: Event) -> None:
        self.log.append((self.name, type(event).__name__))
        if self.fail:
            raise RuntimeError(f"{self.name} is broken")

    def __repr__(self) -> str:
        return self.name


def test_each_subscriber_gets_a_calls_events_in_the_composed_order() -> None:
    seen: list[tuple[str, str]] = []
    hub = EventHub([Recorder("a", seen), Recorder("b", seen)], clock=lambda: 7.0)
    hub.charger_connected("CP1")
    hub.charger_exchanged("CP1", "BootNotification", *BOOT)
    hub.charger_disconnected("CP1")
    assert seen == [
        ("a", "ChargerConnected"),
        ("b", "ChargerConnected"),
        ("a", "CallExchanged"),
        ("a", "ChargerBooted"),
        ("b", "CallExchanged"),
        ("b", "ChargerBooted"),
        ("a", "ChargerDisconnected"),
        ("b", "ChargerDisconnected"),
    ]


def test_events_carry_the_charger_and_the_hubs_clock() -> None:
    got: list[Event] = []

    class Keep:
        def handle(self, event: Event) -> None:
            got.append(event)

    hub = EventHub([Keep()], clock=lambda: 7.0)
    hub.charger_connected("CP1")
    hub.charger_exchanged("CP1", "BootNotification", *BOOT)
    hub.charger_disconnected("CP1")
    assert got[0] == ChargerConnected(charger_id="CP1", at=7.0)
    assert got[1] == CallExchanged(charger_id="CP1", at=7.0, action="BootNotification")
    assert isinstance(got[2], ChargerBooted) and got[2].accepted and got[2].at == 7.0
    assert got[3] == ChargerDisconnected(charger_id="CP1", at=7.0)


def test_a_failing_subscriber_is_logged_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, str]] = []
    hub = EventHub([Recorder("broken", seen, fail=True), Recorder("fine", seen)])
    with caplog.at_level(logging.ERROR, logger="edgegw.ocpp.hub"):
        hub.charger_exchanged("CP1", "BootNotification", *BOOT)  # must not raise
    # the broken part still gets every event of the call, and so does the next one
    assert seen == [
        ("broken", "CallExchanged"),
        ("broken", "ChargerBooted"),
        ("fine", "CallExchanged"),
        ("fine", "ChargerBooted"),
    ]
    failures = [r for r in caplog.records if "broken failed" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)


def test_an_interpreter_failure_still_delivers_the_call(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, str]] = []

    def broken(*_args: Any) -> tuple[Event, ...]:
        raise ValueError("bug")

    hub = EventHub([Recorder("a", seen)], interpreter=broken)
    with caplog.at_level(logging.ERROR, logger="edgegw.ocpp.hub"):
        hub.charger_exchanged("CP1", "MeterValues", {}, {})
    assert seen == [("a", "CallExchanged")]
    assert any("could not be interpreted" in r.getMessage() for r in caplog.records)


def test_an_extended_hub_adds_parts_after_and_leaves_the_first_as_it_was() -> None:
    seen: list[tuple[str, str]] = []
    first = EventHub([Recorder("a", seen)], clock=lambda: 7.0)
    second = first.extended(Recorder("b", seen))
    first.charger_connected("CP1")
    second.charger_connected("CP1")
    assert seen == [("a", "ChargerConnected"), ("a", "ChargerConnected"), ("b", "ChargerConnected")]
    assert len(first.subscribers) == 1 and len(second.subscribers) == 2


async def test_the_daemon_composes_its_parts_in_the_stated_order(
    make_gateway: GatewayFactory, meter: SimMeter
) -> None:
    gateway = await make_gateway(
        chargers=[{"id": "CP1", "max_current_a": 16}],
        site={"limit_a": 40},
        auth={"push_local_list": True, "unknown_cards": "accept"},
        buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        meters=[{"profile": "eastron-sdm630", "poll_interval": 0.5}],
    )
    hub = gateway.hub
    assert hub is not None
    kinds = [type(part) for part in hub.subscribers]
    assert kinds == [
        CommissionObserver,
        LiveState,
        PushWhenReady,
        type(gateway.controller),
        MeterSampling,
        CardLearner,
    ]
    assert hub.subscribers[3] is gateway.controller
    assert hub.subscribers[4] is gateway.sampling
    assert gateway.learn_ops is not None and hub.subscribers[5] is gateway.learn_ops.learner
    # every part sees a real charger through the hub, the list pusher after the boot
    assert gateway.list_pusher is not None and gateway.sampling is not None
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as cp:
        await cp.boot()
        await gateway.list_pusher.wait_idle("CP1")
        await gateway.sampling.wait_configured("CP1")
    observer = hub.subscribers[0]
    assert isinstance(observer, CommissionObserver)
    assert observer.seen("CP1", ["BootNotification"])


# ------------------------------------------------------------------ routing by event type


class Routed:
    """A subscriber that names a handler for ChargerBooted only."""

    def __init__(self, name: str, log: list[tuple[str, str]], *, fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    def event_routes(self) -> dict[type[Event], Any]:
        return {ChargerBooted: self._booted}

    def _booted(self, event: ChargerBooted) -> None:
        self.log.append((self.name, f"booted {event.accepted}"))
        if self.fail:
            raise RuntimeError(f"{self.name} is broken")

    def handle(self, event: Event) -> None:
        self.log.append((self.name, f"handle {type(event).__name__}"))

    def __repr__(self) -> str:
        return self.name


def test_a_routed_subscriber_gets_only_the_types_it_names_in_the_composed_order() -> None:
    seen: list[tuple[str, str]] = []
    hub = EventHub([Routed("r", seen), Recorder("a", seen)], clock=lambda: 7.0)
    hub.charger_connected("CP1")
    hub.charger_exchanged("CP1", "BootNotification", *BOOT)
    hub.charger_disconnected("CP1")
    assert seen == [
        ("a", "ChargerConnected"),
        ("r", "booted True"),  # its handler, not handle; CallExchanged not handed to it
        ("a", "CallExchanged"),
        ("a", "ChargerBooted"),
        ("a", "ChargerDisconnected"),
    ]


def test_an_event_of_another_type_reaches_handle() -> None:
    """A type the hub's table does not know (a subclass of an event) goes to ``handle``."""

    class Special(ChargerBooted):
        pass

    seen: list[tuple[str, str]] = []
    hub = EventHub(
        [Routed("r", seen)],
        interpreter=lambda *_a: (Special(charger_id="CP1", at=1.0, accepted=True),),
    )
    hub.charger_exchanged("CP1", "BootNotification", *BOOT)
    assert seen == [("r", "handle Special")]


def test_a_failing_routed_handler_is_logged_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, str]] = []
    hub = EventHub([Routed("broken", seen, fail=True), Recorder("fine", seen)])
    with caplog.at_level(logging.ERROR, logger="edgegw.ocpp.hub"):
        hub.charger_exchanged("CP1", "BootNotification", *BOOT)
    assert seen == [("broken", "booted True"), ("fine", "CallExchanged"), ("fine", "ChargerBooted")]
    failures = [r for r in caplog.records if "broken failed on ChargerBooted" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info


class Pusher:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def charger_connected(self, charger_id: str, version: str | None = None) -> None:
        self.calls.append(("connected", charger_id, version))

    def charger_disconnected(self, charger_id: str) -> None:
        self.calls.append(("disconnected", charger_id))


_CALLS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("CP1", "Heartbeat", {}, {}),
    ("CP1", "BootNotification", *BOOT),
    ("CP1", "StatusNotification", {"connectorId": 1, "status": "Preparing"}, {}),
    ("CP1", "Authorize", {"idTag": "BAD"}, {"idTagInfo": {"status": "Invalid"}}),
    (
        "CP1",
        "StartTransaction",
        {"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 100},
        {"transactionId": 7, "idTagInfo": {"status": "Accepted"}},
    ),
    (
        "CP1",
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 7,
            "meterValue": [
                {"sampledValue": [{"value": "16", "measurand": "Current.Import", "phase": "L1"}]}
            ],
        },
        {},
    ),
    ("CP1", "StatusNotification", {"connectorId": 1, "status": "Faulted", "errorCode": "X"}, {}),
    ("CP1", "StopTransaction", {"transactionId": 7, "meterStop": 900}, {}),
    ("CP2", "StatusNotification", {"connectorId": 0, "status": "Available"}, {}),
]


def test_routed_delivery_means_what_handle_means() -> None:
    """The daemon's routed parts, fed once through the hub's routing and once through their
    ``handle``: the same state after (observer, live state, list pusher's readiness)."""
    from edgegw.config import parse_config
    from tests.test_livestate import Parts

    def parts() -> tuple[CommissionObserver, LiveState, PushWhenReady, Pusher]:
        pusher = Pusher()
        live = LiveState(Parts(parse_config({"chargers": [{"id": "CP1"}]})), clock=lambda: 7.0)
        return CommissionObserver(clock=lambda: 7.0), live, PushWhenReady(pusher), pusher

    routed, direct = parts(), parts()
    hub = EventHub(routed[:3], clock=lambda: 7.0)
    tap = EventHub([_Tap(direct[:3])], clock=lambda: 7.0)  # every event to every handle
    for each in (hub, tap):
        for charger_id in ("CP1", "CP2"):
            each.charger_connected(charger_id)
        for charger_id, action, request, response in _CALLS:
            each.charger_exchanged(charger_id, action, request, response)
        each.charger_disconnected("CP2")
    assert routed[0]._recent == direct[0]._recent and routed[0]._recent["CP1"]
    assert routed[1].snapshot() == direct[1].snapshot()
    assert routed[1].events() == direct[1].events() and routed[1].events()
    assert routed[3].calls == direct[3].calls and routed[3].calls


class _Tap:
    """One unrouted subscriber handing each event to each part's ``handle``."""

    def __init__(self, parts: Any) -> None:
        self.parts = parts

    def handle(self, event: Event) -> None:
        for part in self.parts:
            part.handle(event)
