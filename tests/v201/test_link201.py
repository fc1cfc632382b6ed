"""The relay core with a 2.x charger: everything passes untouched; no sockets."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from edgegw.proxy import frames
from edgegw.proxy.frames import CallResult
from edgegw.proxy.hooks import SiteOverride
from edgegw.proxy.link import (
    AnswerLocally,
    CloudVerdict,
    Exchanged,
    Link,
    ToCharger,
    ToCloud,
)
from edgegw.store.outbox import QueuedMessage

BOOT201 = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}


def make_link(
    version: str,
    *,
    site: bool = False,
    cloud: bool = True,
    clock: Callable[[], float] = lambda: 1000.0,
) -> Link:
    counter = itertools.count(1)

    def refuse_all(action: str, payload: dict[str, Any], *more: Any) -> SiteOverride | None:
        raise AssertionError(f"the site was asked about a 2.x {action}")

    def clamp(action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return payload  # nothing to clamp: the frame must pass as it came

    link = Link(
        "CS1",
        cloud_configured=cloud,
        validate=True,
        call_timeout=30,
        clock=clock,
        new_id=lambda: str(next(counter)),
        answer_local_list=True,
        cloud_filter=clamp if site else None,
        site_answer=refuse_all if site else None,
        site_call=refuse_all if site else None,
    )
    link.use_version(version)
    if cloud:
        assert link.outbox_loaded([], more=False) == []
    return link


def online(version: str = "ocpp2.0.1", **kwargs: Any) -> Link:
    link = make_link(version, **kwargs)
    assert link.cloud_connected() == []
    return link


def frame(*parts: Any) -> str:
    return json.dumps(list(parts))


def test_transaction_event_passes_with_its_string_id_untouched() -> None:
    link = online(site=True)
    raw = frame(
        2,
        "t1",
        "TransactionEvent",
        {
            "eventType": "Ended",
            "timestamp": "2026-12-07T10:00:00Z",
            "triggerReason": "StopAuthorized",
            "seqNo": 4,
            "transactionInfo": {"transactionId": "abc-1", "stoppedReason": "Local"},
            "idToken": {"idToken": "04AABB", "type": "ISO14443"},
        },
    )
    assert link.on_charger_message(raw) == [ToCloud(raw)]
    answer = frame(3, "t1", {"idTokenInfo": {"status": "Blocked"}})
    out = link.on_cloud_message(answer)
    assert out[0] == ToCharger(answer)  # the site did not rewrite it
    assert isinstance(out[1], Exchanged) and out[1].answered_by == "cloud"


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        (
            "RequestStartTransaction",
            {"idToken": {"idToken": "X", "type": "Central"}, "remoteStartId": 1},
        ),
        (
            "SetChargingProfile",
            {
                "evseId": 1,
                "chargingProfile": {
                    "id": 1,
                    "stackLevel": 0,
                    "chargingProfilePurpose": "TxDefaultProfile",
                    "chargingProfileKind": "Absolute",
                    "chargingSchedule": [
                        {
                            "id": 1,
                            "chargingRateUnit": "A",
                            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 32.0}],
                        }
                    ],
                },
            },
        ),
    ],
)
def test_cloud_calls_reach_the_charger_untouched(action: str, payload: dict[str, Any]) -> None:
    """No local-list answer, no site refusal for a 2.x charger (yet); the cloud filter sees its
    calls (it clamps profiles under the site cap) and a call it leaves alone passes as it came."""
    link = online(site=True)
    raw = frame(2, "c1", action, payload)
    assert link.on_cloud_message(raw) == [ToCharger(raw)]
    answer = frame(3, "c1", {"status": "Accepted"})
    assert link.on_charger_message(answer)[0] == ToCloud(answer)


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1"])
def test_the_local_list_calls_are_answered_by_the_gateway(version: str) -> None:
    """1.6 and 2.0.1: the gateway owns the charger's list (one mirror, auth.cloudlist201)."""
    link = online(version, site=False)
    number = "listVersion" if version == "ocpp1.6" else "versionNumber"
    for action, payload in (
        ("GetLocalListVersion", {}),
        ("SendLocalList", {number: 3, "updateType": "Full"}),
    ):
        out = link.on_cloud_message(frame(2, "c1", action, payload))
        assert type(out[0]).__name__ == "CloudCallForGateway"


def test_a_21_link_relays_the_local_list_calls() -> None:
    link = online("ocpp2.1", site=False)
    raw = frame(2, "c1", "GetLocalListVersion", {})
    assert link.on_cloud_message(raw) == [ToCharger(raw)]


def test_201_payloads_are_checked_with_the_201_schemas() -> None:
    link = online()
    out = link.on_charger_message(frame(2, "b1", "BootNotification", {"reason": "PowerUp"}))
    (error,) = [json.loads(c.frame) for c in out if isinstance(c, ToCharger)]
    assert error[:3] == [4, "b1", "OccurrenceConstraintViolation"]
    out = link.on_charger_message(frame(2, "s1", "StartTransaction", {"connectorId": 1}))
    assert json.loads(out[0].frame)[:3] == [4, "s1", "NotImplemented"]  # type: ignore[union-attr]
    good = frame(2, "b2", "BootNotification", BOOT201)
    assert link.on_charger_message(good) == [ToCloud(good)]


@pytest.mark.parametrize("version", ["ocpp2.0.1", "ocpp1.6"])
def test_21_message_types_are_dropped_unless_the_charger_speaks_21(version: str) -> None:
    link = online(version)
    assert link.on_charger_message(frame(6, "s1", "NotifyPeriodicEventStream", {"id": 1})) == []
    assert link.on_cloud_message(frame(5, "r1", "GenericError", "no", {})) == []


def test_21_send_and_callresulterror_pass_both_ways_untouched() -> None:
    link = online("ocpp2.1")
    send = (
        '[6, "s1", "NotifyPeriodicEventStream", {"id": 1, "pending": 0, "basetime": "x", '
        '"data": []}]'
    )
    assert link.on_charger_message(send) == [ToCloud(send)]
    error = '[5,"r1","FormatViolation","bad result",{}]'
    assert link.on_cloud_message(error) == [ToCharger(error)]
    assert link.on_charger_message(error) == [ToCloud(error)]
    # They take no part in the one-call-in-flight bookkeeping.
    raw = frame(2, "h1", "Heartbeat", {})
    assert link.on_charger_message(raw) == [ToCloud(raw)]


def test_21_frames_are_not_schema_checked() -> None:
    link = online("ocpp2.1")
    raw = frame(2, "x1", "SomeNew21Action", {"anything": [1, 2]})
    assert link.on_charger_message(raw) == [ToCloud(raw)]


def _answer_locally(link: Link, out: list[Any], payload: dict[str, Any]) -> list[Any]:
    """The shell's part: the gateway's answer to the one AnswerLocally in ``out``."""
    (local,) = [c for c in out if isinstance(c, AnswerLocally)]
    return link.local_answer(local.call.id, result_of(local.call.id, payload))


def result_of(message_id: str, payload: dict[str, Any]) -> CallResult:
    return frames.make_result(message_id, payload)


NOTIFY = {
    "generatedAt": "2026-12-07T10:00:00Z",
    "seqNo": 0,
    "eventData": [
        {
            "eventId": 1,
            "timestamp": "2026-12-07T10:00:00Z",
            "trigger": "Alerting",
            "actualValue": "true",
            "eventNotificationType": "HardWiredNotification",
            "component": {"name": "EVSE"},
            "variable": {"name": "Problem"},
        }
    ],
}
EVENT = {
    "eventType": "Started",
    "timestamp": "2026-12-07T10:00:00Z",
    "triggerReason": "Authorized",
    "seqNo": 0,
    "transactionInfo": {"transactionId": "tx-1"},
    "evse": {"id": 1, "connectorId": 1},
    "idToken": {"idToken": "04AABBCC", "type": "ISO14443"},
}


def test_a_201_charger_is_answered_locally_when_its_cloud_cannot_be_reached() -> None:
    """OCPP 2.1 Local Controller: the charger stays connected, the gateway answers."""
    link = make_link("ocpp2.0.1")
    out = link.cloud_unreachable()
    assert not [c for c in out if type(c).__name__ == "CloseCharger"]
    boot = frame(2, "b1", "BootNotification", BOOT201)
    out = link.on_charger_message(boot)
    assert [(type(c).__name__, getattr(c, "queue", None)) for c in out] == [
        ("AnswerLocally", False)
    ]
    done = _answer_locally(link, out, {"status": "Accepted", "currentTime": "t", "interval": 300})
    assert isinstance(done[0], ToCharger) and isinstance(done[1], Exchanged)
    assert done[1].answered_by == "gateway"
    # A TransactionEvent is a transaction message: the shell commits it to the outbox first.
    out = link.on_charger_message(frame(2, "t1", "TransactionEvent", EVENT))
    assert [(type(c).__name__, getattr(c, "queue", None)) for c in out] == [("AnswerLocally", True)]
    assert link.charger_attached() == []  # a new connection is served, not closed


def test_queued_events_go_after_the_replayed_boot_and_statuses_in_order() -> None:
    """Back online: the boot first, then NotifyEvents and Faulted statuses, the latest status
    per (EVSE, connector), then the outbox in order, as the shell stored it."""
    link = make_link("ocpp2.0.1")
    link.cloud_unreachable()
    boot = frame(2, "b1", "BootNotification", BOOT201)
    _answer_locally(link, link.on_charger_message(boot), {"status": "Accepted"})
    calls = [
        ("s1", "StatusNotification", {"evseId": 1, "connectorId": 1, "connectorStatus": "Faulted"}),
        (
            "s2",
            "StatusNotification",
            {"evseId": 2, "connectorId": 1, "connectorStatus": "Occupied"},
        ),
        ("n1", "NotifyEvent", NOTIFY),
        (
            "s3",
            "StatusNotification",
            {"evseId": 1, "connectorId": 1, "connectorStatus": "Available"},
        ),
    ]
    for message_id, action, body in calls:
        payload = {**body, "timestamp": "2026-12-07T10:00:00Z"} if action[0] == "S" else body
        _answer_locally(link, link.on_charger_message(frame(2, message_id, action, payload)), {})
    queued = []
    for seq in (0, 1):
        event = {**EVENT, "seqNo": seq, "offline": True}
        out = link.on_charger_message(frame(2, f"t{seq}", "TransactionEvent", event))
        (local,) = [c for c in out if isinstance(c, AnswerLocally)]
        message = QueuedMessage(seq + 1, "CS1", "TransactionEvent", event, 0.0)
        queued.append(message)
        link.local_answer(local.call.id, result_of(local.call.id, {}), message)
    assert link.owes_cloud  # the cloud link stays for them
    out = link.cloud_connected()
    sent = []
    while out:
        (cmd,) = [c for c in out if isinstance(c, ToCloud)]
        sent.append(json.loads(cmd.frame))
        answer = {"status": "Accepted", "currentTime": "t", "interval": 300}
        out = [
            c
            for c in link.on_cloud_message(frame(3, sent[-1][1], answer))
            if isinstance(c, ToCloud)
        ]
    assert [(f[2], f[3].get("connectorStatus"), f[3].get("seqNo")) for f in sent] == [
        ("BootNotification", None, None),
        ("StatusNotification", "Faulted", None),
        ("NotifyEvent", None, 0),
        ("StatusNotification", "Available", None),
        ("StatusNotification", "Occupied", None),
        ("TransactionEvent", None, 0),
        ("TransactionEvent", None, 1),
    ]
    assert all(f[3]["offline"] is True for f in sent if f[2] == "TransactionEvent")
    assert not link.owes_cloud


def test_a_link_sends_only_the_queued_messages_of_its_own_version() -> None:
    """A charger that changed version may leave the other version's messages on disk: a 1.6
    StartTransaction never goes over a 2.x cloud link, nor a TransactionEvent over a 1.6 one."""
    start16 = {"connectorId": 1, "idTag": "AABBCCDD", "meterStart": 0, "timestamp": "t"}
    messages = [
        QueuedMessage(1, "CS1", "StartTransaction", start16, 0.0, 0, 2_000_000_001),
        QueuedMessage(2, "CS1", "TransactionEvent", {**EVENT, "offline": True}, 0.0),
    ]
    for version, action in (("ocpp2.0.1", "TransactionEvent"), ("ocpp1.6", "StartTransaction")):
        link = make_link(version, cloud=True)
        link.cloud_connected()
        out = link.outbox_loaded(list(messages), more=False)
        assert [json.loads(c.frame)[2] for c in out if isinstance(c, ToCloud)] == [action]


def test_a_16_charger_stays_connected_when_its_cloud_goes() -> None:
    link = make_link("ocpp1.6")
    assert not [c for c in link.cloud_unreachable() if type(c).__name__ == "CloseCharger"]
    link.cloud_connected()
    assert not [c for c in link.cloud_disconnected() if type(c).__name__ == "CloseCharger"]


def test_a_slow_cloud_gets_a_201_charger_answered_locally_at_the_deadline() -> None:
    clock_now = [1000.0]
    link = online(clock=lambda: clock_now[0])
    raw = frame(2, "a1", "Authorize", {"idToken": {"idToken": "X", "type": "ISO14443"}})
    assert link.on_charger_message(raw) == [ToCloud(raw)]
    nxt = frame(2, "h1", "Heartbeat", {})
    assert link.on_charger_message(nxt) == []  # behind the call in flight
    clock_now[0] += 31
    out = link.on_timer()
    assert [(type(c).__name__, c.call.id) for c in out if isinstance(c, AnswerLocally)] == [
        ("AnswerLocally", "a1")
    ]
    done = _answer_locally(link, out, {"idTokenInfo": {"status": "Accepted"}})
    assert done[0] == ToCharger(result_of("a1", {"idTokenInfo": {"status": "Accepted"}}).raw)
    # The cloud's late answer goes no further (the charger has the gateway's) but is learnt
    # for the next decision; the Heartbeat waiting behind goes to the cloud.
    late = link.on_cloud_message(frame(3, "a1", {"idTokenInfo": {"status": "Blocked"}}))
    assert not [c for c in late if isinstance(c, ToCharger)]
    (verdict,) = [c for c in late if isinstance(c, CloudVerdict)]
    assert verdict.answer.payload == {"idTokenInfo": {"status": "Blocked"}}
    assert ToCloud(nxt) in late
