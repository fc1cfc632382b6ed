"""The list pusher starts at a charger once it is ready for the gateway's calls."""

from __future__ import annotations

from typing import Any

from edgegw.auth.pushready import PushWhenReady
from edgegw.ocpp.events import ChargerConnected, ChargerDisconnected
from edgegw.ocpp.interpret import interpret
from edgegw.ocpp.interpret201 import interpret201


class Pusher:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def charger_connected(self, charger_id: str) -> None:
        self.calls.append(("connected", charger_id))

    def charger_disconnected(self, charger_id: str) -> None:
        self.calls.append(("disconnected", charger_id))


def call(ready: PushWhenReady, action: str, request: Any, response: Any) -> None:
    for event in interpret("CP1", action, request, response, 0.0):
        ready.handle(event)


def test_starts_after_an_accepted_boot_only() -> None:
    pusher = Pusher()
    ready = PushWhenReady(pusher)
    ready.handle(ChargerConnected(charger_id="CP1", at=0.0))
    call(ready, "BootNotification", {}, {"status": "Pending"})
    call(ready, "BootNotification", {}, {"status": "Rejected"})
    assert pusher.calls == []
    call(ready, "BootNotification", {}, {"status": "Accepted"})
    assert pusher.calls == [("connected", "CP1")]
    call(ready, "Heartbeat", {}, {})
    call(ready, "BootNotification", {}, {"status": "Accepted"})
    assert pusher.calls == [("connected", "CP1")]  # once per connection


def test_a_charger_that_did_not_reboot_starts_at_its_first_other_call() -> None:
    pusher = Pusher()
    ready = PushWhenReady(pusher)
    ready.handle(ChargerConnected(charger_id="CP1", at=0.0))
    call(ready, "StatusNotification", {"connectorId": 1, "status": "Available"}, {})
    assert pusher.calls == [("connected", "CP1")]


def test_nothing_before_the_connection_and_a_disconnect_stops_it() -> None:
    pusher = Pusher()
    ready = PushWhenReady(pusher)
    call(ready, "Heartbeat", {}, {})
    assert pusher.calls == []
    ready.handle(ChargerConnected(charger_id="CP1", at=0.0))
    ready.handle(ChargerDisconnected(charger_id="CP1", at=1.0))
    call(ready, "Heartbeat", {}, {})
    assert pusher.calls == [("disconnected", "CP1")]


class VersionedPusher(Pusher):
    def charger_connected(self, charger_id: str, version: str | None = None) -> None:
        self.calls.append(("connected", f"{charger_id} {version}"))


def test_a_201_station_waits_for_its_boot_and_is_handed_on_with_its_version() -> None:
    pusher = VersionedPusher()
    ready = PushWhenReady(pusher)
    ready.handle(ChargerConnected(charger_id="CP1", at=0.0, version="ocpp2.0.1"))
    boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
    for event in interpret201("CP1", "BootNotification", boot, {"status": "Pending"}, 0.0):
        ready.handle(event)
    assert pusher.calls == []
    for event in interpret201("CP1", "BootNotification", boot, {"status": "Accepted"}, 0.0):
        ready.handle(event)
    assert pusher.calls == [("connected", "CP1 ocpp2.0.1")]


def test_a_21_charger_is_handed_on_at_once() -> None:
    pusher = VersionedPusher()
    ready = PushWhenReady(pusher)
    ready.handle(ChargerConnected(charger_id="CP1", at=0.0, version="ocpp2.1"))
    assert pusher.calls == [("connected", "CP1 ocpp2.1")]
