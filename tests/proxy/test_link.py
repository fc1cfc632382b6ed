"""The relay core as a playbook: events in, commands out, no sockets."""

import itertools
import json
from typing import Any

from edgegw.proxy import frames
from edgegw.proxy.link import (
    AnswerLocally,
    Command,
    Exchanged,
    GatewayDone,
    Link,
    ToCharger,
    ToCloud,
)

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_link(*, cloud: bool = True, validate: bool = True) -> tuple[Link, Clock]:
    clock = Clock()
    counter = itertools.count(1)
    link = Link(
        "CP1",
        cloud_configured=cloud,
        validate=validate,
        call_timeout=30,
        clock=clock,
        new_id=lambda: str(next(counter)),
    )
    return link, clock


def call(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, message_id, action, payload])


def result(message_id: str, payload: dict[str, Any] | None = None) -> str:
    return json.dumps([3, message_id, payload or {}])


def sent(commands: list[Command], kind: type[ToCharger] | type[ToCloud]) -> list[list[Any]]:
    return [json.loads(c.frame) for c in commands if isinstance(c, kind)]


def online() -> Link:
    link, _ = make_link()
    assert link.outbox_loaded([], more=False) == []
    assert link.cloud_connected() == []
    return link


def test_charger_call_is_relayed_unchanged_and_answer_routed_back() -> None:
    link = online()
    raw = call("c1", "Heartbeat", {})
    assert link.on_charger_message(raw) == [ToCloud(raw)]
    answer = result("c1", {"currentTime": "2026-01-01T00:00:00Z"})
    out = link.on_cloud_message(answer)
    assert out[0] == ToCharger(answer)
    assert isinstance(out[1], Exchanged) and out[1].answered_by == "cloud"


def test_one_call_in_flight_towards_the_cloud() -> None:
    link = online()
    first = call("a", "Heartbeat", {})
    second = call(
        "b", "StatusNotification", {"connectorId": 1, "status": "Available", "errorCode": "NoError"}
    )
    assert link.on_charger_message(first) == [ToCloud(first)]
    assert link.on_charger_message(second) == []  # waits for the first answer
    out = link.on_cloud_message(result("a", {"currentTime": "2026-01-01T00:00:00Z"}))
    assert sent(out, ToCloud) == [json.loads(second)]


def test_one_call_in_flight_towards_the_charger_and_gateway_ids_distinct() -> None:
    link = online()
    cloud_call = call("k1", "Reset", {"type": "Soft"})
    assert link.on_cloud_message(cloud_call) == [ToCharger(cloud_call)]
    gw_id, out = link.gateway_call("GetConfiguration", {})
    assert out == [] and gw_id.startswith("edgegw-")
    # The charger answers the cloud's call: it goes to the cloud, then the gateway call is sent.
    out = link.on_charger_message(result("k1", {"status": "Accepted"}))
    assert out[0] == ToCloud(result("k1", {"status": "Accepted"}))
    assert sent(out, ToCharger) == [[2, gw_id, "GetConfiguration", {}]]
    # The answer to the gateway's call never goes upstream.
    out = link.on_charger_message(result(gw_id, {"configurationKey": []}))
    assert sent(out, ToCloud) == []
    assert isinstance(out[0], GatewayDone) and out[0].message_id == gw_id


def test_crossing_calls_both_directions() -> None:
    link = online()
    up = call("c1", "Heartbeat", {})
    down = call("k1", "UnlockConnector", {"connectorId": 1})
    assert link.on_charger_message(up) == [ToCloud(up)]
    assert link.on_cloud_message(down) == [ToCharger(down)]
    assert sent(link.on_charger_message(result("k1", {"status": "Unlocked"})), ToCloud)
    assert sent(link.on_cloud_message(result("c1", {"currentTime": "x"})), ToCharger)


def test_unknown_answer_ids_are_dropped() -> None:
    link = online()
    assert link.on_charger_message(result("nobody-asked")) == []
    assert link.on_cloud_message(result("nobody-asked")) == []


def test_cloud_connecting_holds_charger_calls_then_offline_answers_locally() -> None:
    link, _ = make_link()
    raw = call("b1", "BootNotification", BOOT)
    assert link.on_charger_message(raw) == []  # waiting for the first connection attempt
    out = link.cloud_unreachable()
    assert len(out) == 1 and isinstance(out[0], AnswerLocally)
    answer = frames.make_result("b1", {"status": "Accepted", "currentTime": "x", "interval": 300})
    out = link.local_answer("b1", answer)
    assert out[0] == ToCharger(answer.raw)
    # When the cloud comes, the locally answered boot is replayed first with a fresh id.
    out = link.cloud_connected()
    (replayed,) = sent(out, ToCloud)
    assert replayed[2:] == ["BootNotification", BOOT] and replayed[1] != "b1"
    # Its answer is not forwarded to the charger.
    assert link.on_cloud_message(result(replayed[1], {"status": "Accepted"})) == []
    # Next time the cloud returns, nothing is replayed again.
    link.cloud_disconnected()
    assert link.cloud_connected() == []


def test_latest_status_per_connector_and_errors_replayed() -> None:
    link, _ = make_link()
    link.cloud_unreachable()

    def status(mid: str, connector: int, state: str, error: str = "NoError") -> None:
        payload = {"connectorId": connector, "status": state, "errorCode": error}
        out = link.on_charger_message(call(mid, "StatusNotification", payload))
        assert isinstance(out[0], AnswerLocally)
        link.local_answer(mid, frames.make_result(mid, {}))

    status("1", 1, "Preparing")
    status("2", 1, "Faulted", "GroundFailure")
    status("3", 1, "Available")
    status("4", 2, "Charging")
    replayed = sent(link.cloud_connected(), ToCloud)
    assert [r[3]["errorCode"] for r in replayed] == ["GroundFailure"]
    seen = [replayed[0]]
    while True:
        out = link.on_cloud_message(result(seen[-1][1]))
        nxt = sent(out, ToCloud)
        if not nxt:
            break
        seen.append(nxt[0])
    assert [(r[3]["connectorId"], r[3]["status"]) for r in seen] == [
        (1, "Faulted"),
        (1, "Available"),
        (2, "Charging"),
    ]


def test_cloud_timeout_answers_locally_and_late_answer_dropped() -> None:
    link, clock = make_link()
    link.cloud_connected()
    link.on_charger_message(call("h", "Heartbeat", {}))
    assert link.next_deadline() == clock.now + 30
    clock.now += 31
    out = link.on_timer()
    assert isinstance(out[0], AnswerLocally) and out[0].call.id == "h"
    assert link.on_cloud_message(result("h", {"currentTime": "x"})) == []  # too late: dropped


def test_cloud_loss_with_call_in_flight_is_answered_locally() -> None:
    link = online()
    link.on_charger_message(call("h", "Heartbeat", {}))
    out = link.cloud_disconnected()
    assert isinstance(out[0], AnswerLocally) and out[0].call.id == "h"


def test_answer_to_cloud_call_from_a_lost_link_is_not_forwarded() -> None:
    link = online()
    link.on_cloud_message(call("k", "Reset", {"type": "Hard"}))
    link.cloud_disconnected()
    link.cloud_connected()
    assert sent(link.on_charger_message(result("k", {"status": "Accepted"})), ToCloud) == []


def test_charger_disconnect_fails_pending_cloud_and_gateway_calls() -> None:
    link = online()
    link.on_cloud_message(call("k1", "Reset", {"type": "Hard"}))
    link.on_cloud_message(call("k2", "ClearCache", {}))
    gw_id, _ = link.gateway_call("GetConfiguration", {})
    out = link.charger_closed()
    errors = sent(out, ToCloud)
    assert [(e[0], e[1], e[2]) for e in errors] == [
        (4, "k1", "GenericError"),
        (4, "k2", "GenericError"),
    ]
    assert [c.message_id for c in out if isinstance(c, GatewayDone)] == [gw_id]


def test_invalid_calls_get_the_right_callerror_and_are_not_relayed() -> None:
    link = online()
    cases = {
        call("1", "Teleport", {}): "NotImplemented",
        call("2", "RemoteStartTransaction", {"idTag": "X"}): "NotSupported",
        call("3", "BootNotification", {"chargePointVendor": "V"}): "ProtocolError",
        call("4", "Authorize", {"idTag": "X" * 21}): "TypeConstraintViolation",
        call("5", "Heartbeat", {"extra": 1}): "FormationViolation",
        call(
            "6",
            "StatusNotification",
            {"connectorId": 1, "status": "Dancing", "errorCode": "NoError"},
        ): "PropertyConstraintViolation",
    }
    for raw, code in cases.items():
        (reply,) = sent(link.on_charger_message(raw), ToCharger)
        assert reply[0] == 4 and reply[1] == json.loads(raw)[1] and reply[2] == code, raw
    assert link.queued_to_cloud == 0


def test_invalid_cloud_call_answered_to_cloud() -> None:
    link = online()
    (reply,) = sent(link.on_cloud_message(call("9", "Reset", {"type": "Sideways"})), ToCloud)
    assert reply[:3] == [4, "9", "PropertyConstraintViolation"]
    assert link.queued_to_charger == 0


def test_schema_checks_can_be_disabled_for_quirky_chargers() -> None:
    link, _ = make_link(validate=False)
    link.cloud_connected()
    raw = call("1", "Heartbeat", {"vendorExtra": True})
    assert link.on_charger_message(raw) == [ToCloud(raw)]


def test_standalone_answers_everything_locally() -> None:
    link, _ = make_link(cloud=False)
    out = link.on_charger_message(call("1", "Heartbeat", {}))
    assert isinstance(out[0], AnswerLocally)


def test_cloud_call_after_charger_left_gets_callerror_at_once() -> None:
    link = online()
    link.charger_closed()
    (reply,) = sent(link.on_cloud_message(call("k9", "ClearCache", {})), ToCloud)
    assert reply[:3] == [4, "k9", "GenericError"]
    assert link.queued_to_charger == 0
