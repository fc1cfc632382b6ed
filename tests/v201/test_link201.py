"""The relay core with a 2.x charger: everything passes untouched; no sockets."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from edgegw.proxy import frames
from edgegw.proxy.hooks import SiteOverride
from edgegw.proxy.link import AnswerLocally, Command, Exchanged, Link, ToCharger, ToCloud

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


def _answer_offline(link: Link, raw: str, answer: frames.CallResult | frames.CallError) -> Any:
    out: list[Command] = link.on_charger_message(raw)
    (local,) = [c for c in out if isinstance(c, AnswerLocally)]
    assert local.queue is False  # nothing of 2.x goes to the 1.6 outbox
    out = link.local_answer(local.call.id, answer)
    return json.loads(next(c.frame for c in out if isinstance(c, ToCharger)))


def test_offline_only_answers_the_16_and_201_share_reach_the_charger() -> None:
    link = make_link("ocpp2.0.1")
    assert link.cloud_unreachable() == []
    boot = frame(2, "b1", "BootNotification", BOOT201)
    accepted = {"status": "Accepted", "currentTime": "2026-12-07T10:00:00Z", "interval": 300}
    assert _answer_offline(link, boot, frames.make_result("b1", accepted)) == [3, "b1", accepted]
    # The responder speaks 1.6: a 2.x call it has no 2.x answer for never reaches it.
    auth = frame(2, "a1", "Authorize", {"idToken": {"idToken": "X", "type": "ISO14443"}})
    out = link.on_charger_message(auth)
    assert not [c for c in out if isinstance(c, AnswerLocally)]
    (answered,) = [json.loads(c.frame) for c in out if isinstance(c, ToCharger)]
    assert answered[:3] == [4, "a1", "InternalError"]
    tx = frame(
        2,
        "t1",
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": "2026-12-07T10:00:00Z",
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "abc"},
        },
    )
    out = link.on_charger_message(tx)
    assert not [c for c in out if isinstance(c, AnswerLocally)]
    assert [json.loads(c.frame)[:3] for c in out if isinstance(c, ToCharger)] == [
        [4, "t1", "InternalError"]
    ]
    # An error the responder gives for a shared call is what the charger hears (a 2.x code).
    beat = frame(2, "h1", "Heartbeat", {})
    error = frames.make_error("h1", "FormationViolation", "1.6 spelling")
    assert _answer_offline(link, beat, error)[:3] == [4, "h1", "InternalError"]
    # Nothing of it is replayed but the boot.
    out = link.cloud_connected()
    assert [json.loads(c.frame)[2] for c in out if isinstance(c, ToCloud)] == ["BootNotification"]


def test_a_slow_cloud_gets_a_201_charger_an_error_and_its_late_answer_goes_no_further() -> None:
    clock_now = [1000.0]
    link = online(clock=lambda: clock_now[0])
    raw = frame(2, "a1", "Authorize", {"idToken": {"idToken": "X", "type": "ISO14443"}})
    assert link.on_charger_message(raw) == [ToCloud(raw)]
    clock_now[0] += 31
    out = link.on_timer()
    assert [json.loads(c.frame)[:3] for c in out if isinstance(c, ToCharger)] == [
        [4, "a1", "InternalError"]
    ]
    late = link.on_cloud_message(frame(3, "a1", {"idTokenInfo": {"status": "Accepted"}}))
    assert not [c for c in late if isinstance(c, ToCharger)]  # the charger had its answer
    assert not [c for c in late if type(c).__name__ == "CloudVerdict"]  # no 1.6 learning
    nxt = frame(2, "h1", "Heartbeat", {})
    assert link.on_charger_message(nxt) == [ToCloud(nxt)]  # the link goes on


def test_status_replayed_per_evse_and_connector() -> None:
    link = make_link("ocpp2.0.1")
    link.cloud_unreachable()
    for message_id, evse in (("s1", 1), ("s2", 2)):
        payload = {
            "timestamp": "t",
            "connectorStatus": "Occupied",
            "evseId": evse,
            "connectorId": 1,
        }
        _answer_offline(
            link,
            frame(2, message_id, "StatusNotification", payload),
            frames.make_result(message_id, {}),
        )
    out = link.cloud_connected()
    (first,) = [json.loads(c.frame) for c in out if isinstance(c, ToCloud)]
    assert first[2] == "StatusNotification" and first[3]["evseId"] == 1
    out = link.on_cloud_message(frame(3, first[1], {}))
    (second,) = [json.loads(c.frame) for c in out if isinstance(c, ToCloud)]
    assert second[3]["evseId"] == 2  # EVSE 2's connector 1 did not replace EVSE 1's
