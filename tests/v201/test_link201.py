"""The relay core with a 2.x charger: everything passes untouched; no sockets."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from edgegw.proxy.hooks import SiteOverride
from edgegw.proxy.link import (
    AnswerLocally,
    CloseCharger,
    Exchanged,
    Link,
    ToCharger,
    ToCloud,
)

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
        raise AssertionError(f"a 2.x {action} went through the cloud filter")

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
        ("SendLocalList", {"versionNumber": 3, "updateType": "Full"}),
        ("GetLocalListVersion", {}),
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
    """No local-list answer, no site refusal, no cloud-profile filter for a 2.x charger (yet)."""
    link = online(site=True)
    raw = frame(2, "c1", action, payload)
    assert link.on_cloud_message(raw) == [ToCharger(raw)]
    answer = frame(3, "c1", {"status": "Accepted"})
    assert link.on_charger_message(answer)[0] == ToCloud(answer)


def test_a_16_link_still_answers_the_local_list_itself() -> None:
    link = online("ocpp1.6", site=False)
    out = link.on_cloud_message(frame(2, "c1", "GetLocalListVersion", {}))
    assert type(out[0]).__name__ == "CloudCallForGateway"


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


def test_a_201_charger_goes_offline_with_its_cloud_and_is_never_answered_here() -> None:
    link = make_link("ocpp2.0.1")
    assert link.cloud_unreachable() == [CloseCharger(1011, "cloud unreachable")]
    boot = frame(2, "b1", "BootNotification", BOOT201)
    out = link.on_charger_message(boot)
    assert not [c for c in out if isinstance(c, (AnswerLocally, ToCharger, Exchanged))]
    assert link.charger_closed() == []
    # A new connection while the cloud is still away is closed as well.
    assert link.charger_attached() == [CloseCharger(1011, "cloud unreachable")]
    # Up again: the charger is served; down again: it is closed again, nothing answered.
    assert link.cloud_connected() == []
    assert link.on_charger_message(boot) == [ToCloud(boot)]
    out = link.cloud_disconnected()
    assert out == [CloseCharger(1011, "cloud unreachable")]


def test_a_16_charger_stays_connected_when_its_cloud_goes() -> None:
    link = make_link("ocpp1.6")
    assert not [c for c in link.cloud_unreachable() if isinstance(c, CloseCharger)]
    link.cloud_connected()
    assert not [c for c in link.cloud_disconnected() if isinstance(c, CloseCharger)]


def test_a_slow_cloud_leaves_a_201_charger_waiting_for_the_clouds_own_answer() -> None:
    clock_now = [1000.0]
    link = online(clock=lambda: clock_now[0])
    raw = frame(2, "a1", "Authorize", {"idToken": {"idToken": "X", "type": "ISO14443"}})
    assert link.on_charger_message(raw) == [ToCloud(raw)]
    nxt = frame(2, "h1", "Heartbeat", {})
    assert link.on_charger_message(nxt) == []  # behind the call in flight
    clock_now[0] += 31
    assert link.on_timer() == []  # nothing answered by the gateway
    clock_now[0] += 31
    assert link.on_timer() == []  # the waiting Heartbeat is not answered here either
    answer = frame(3, "a1", {"idTokenInfo": {"status": "Accepted"}})
    late = link.on_cloud_message(answer)
    assert late[0] == ToCharger(answer)  # the cloud's answer, late, is the charger's
    assert not [c for c in late if type(c).__name__ == "CloudVerdict"]  # no 1.6 learning
    assert ToCloud(nxt) in late  # the link goes on
    # A cloud that stalls is closed (as for 1.6), and the charger with it.
    stalled = frame(2, "h2", "Heartbeat", {})
    link.on_charger_message(frame(3, "h1", {"currentTime": "t"}))
    link.on_cloud_message(frame(3, "h1", {"currentTime": "t"}))
    assert link.on_charger_message(stalled) == [ToCloud(stalled)]
    clock_now[0] += 31
    assert link.on_timer() == []
    clock_now[0] += 200
    assert [type(c).__name__ for c in link.on_timer()] == ["CloseCloud"]
    assert link.cloud_disconnected() == [CloseCharger(1011, "cloud unreachable")]
