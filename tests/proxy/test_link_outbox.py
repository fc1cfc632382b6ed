"""The outbox part of the relay core, as a playbook: offline queueing, replay, id mapping."""

import itertools
import json
from typing import Any

from edgegw.proxy import frames
from edgegw.proxy.link import (
    OUTBOX_WINDOW,
    AnswerIfResent,
    AnswerLocally,
    Command,
    Delivered,
    DeliveryFailed,
    Link,
    LoadOutbox,
    SyncParams,
    ToCharger,
    ToCloud,
)
from edgegw.store.outbox import QueuedMessage
from tests.proxy.test_link import Clock, call, result, sent

LOCAL = 2_000_000_001
START = {
    "connectorId": 1,
    "idTag": "AABBCCDD",
    "meterStart": 10,
    "timestamp": "2026-01-01T10:00:00Z",
}
STOP = {"transactionId": LOCAL, "meterStop": 500, "timestamp": "2026-01-01T11:00:00Z"}
METER = {
    "connectorId": 1,
    "transactionId": LOCAL,
    "meterValue": [{"timestamp": "2026-01-01T10:30:00Z", "sampledValue": [{"value": "250"}]}],
}


class Harness:
    """A link plus a fake shell that commits queued messages with increasing seq numbers."""

    def __init__(self, **kwargs: Any) -> None:
        self.clock = Clock()
        counter = itertools.count(1)
        self.link = Link(
            "CP1",
            cloud_configured=True,
            validate=True,
            call_timeout=30,
            clock=self.clock,
            new_id=lambda: str(next(counter)),
            sync=SyncParams(max_attempts=3, retry_interval=10, max_retry_interval=60),
            **kwargs,
        )
        self.seq = itertools.count(1)
        self.next_local = itertools.count(LOCAL)
        self.queued: list[QueuedMessage] = []  # what the fake shell committed, in order

    def load(self, messages: list[QueuedMessage] | None = None, more: bool = False) -> None:
        assert self.link.outbox_loaded(messages or [], more) == []

    def offline(self) -> None:
        self.load()
        assert self.link.cloud_unreachable() == []

    def charger(self, message_id: str, action: str, payload: dict[str, Any]) -> list[Command]:
        """Feed a charger call; carry out a queueing AnswerLocally like the shell does."""
        out = self.link.on_charger_message(call(message_id, action, payload))
        locals_ = [c for c in out if isinstance(c, AnswerLocally)]
        if not locals_:
            return out
        (local,) = locals_
        assert local.queue, local
        seq = next(self.seq)
        if action == "StartTransaction":
            tx = next(self.next_local)
            queued = QueuedMessage(seq, "CP1", action, payload, self.clock.now, 0, tx)
            answer = frames.make_result(
                message_id, {"transactionId": tx, "idTagInfo": {"status": "Accepted"}}
            )
        else:
            queued = QueuedMessage(
                seq, "CP1", action, payload, self.clock.now, 0, payload.get("transactionId")
            )
            answer = frames.make_result(message_id, {})
        self.queued.append(queued)
        return self.link.local_answer(message_id, answer, queued)


def test_offline_transaction_is_queued_then_replayed_in_order_with_the_cloud_id() -> None:
    h = Harness()
    h.offline()
    out = h.charger("s", "StartTransaction", START)
    assert sent(out, ToCharger)[0][2]["transactionId"] == LOCAL
    h.charger("m", "MeterValues", METER)
    h.charger("t", "StopTransaction", STOP)
    assert h.link.outbox_window == 3

    out = h.link.cloud_connected()
    (start,) = sent(out, ToCloud)
    assert start[2:] == ["StartTransaction", START]  # exactly as the charger recorded it
    out = h.link.on_cloud_message(
        result(start[1], {"transactionId": 77, "idTagInfo": {"status": "Accepted"}})
    )
    delivered = [c for c in out if isinstance(c, Delivered)]
    assert delivered and delivered[0].cloud_transaction_id == 77
    (meter,) = sent(out, ToCloud)
    assert meter[2] == "MeterValues" and meter[3]["transactionId"] == 77
    assert meter[3]["meterValue"] == METER["meterValue"]
    out = h.link.on_cloud_message(result(meter[1]))
    (stop,) = sent(out, ToCloud)
    assert stop[3] == {**STOP, "transactionId": 77}
    out = h.link.on_cloud_message(result(stop[1]))
    assert sent(out, ToCloud) == [] and h.link.outbox_window == 0
    assert not h.link.outbox_pending


def test_new_transaction_messages_wait_behind_a_non_empty_outbox() -> None:
    h = Harness()
    h.offline()
    h.charger("s", "StartTransaction", START)
    out = h.link.cloud_connected()
    (start,) = sent(out, ToCloud)
    # Meanwhile the charger sends a meter value of the same transaction: it is queued, not
    # relayed ahead of its own start; a heartbeat is not a transaction message and goes live.
    out = h.charger("m", "MeterValues", METER)
    assert sent(out, ToCloud) == []
    assert sent(out, ToCharger) == [[3, "m", {}]]
    out = h.link.on_charger_message(call("h", "Heartbeat", {}))
    assert out == []  # the cloud link has one call in flight: the start
    out = h.link.on_cloud_message(
        result(start[1], {"transactionId": 5, "idTagInfo": {"status": "Accepted"}})
    )
    assert sent(out, ToCloud)[0][2] == "Heartbeat"  # live calls go before the outbox


def test_refused_message_is_retried_with_backoff_then_parked_with_its_followers() -> None:
    h = Harness()
    h.offline()
    h.charger("s", "StartTransaction", START)
    h.charger("t", "StopTransaction", STOP)
    out = h.link.cloud_connected()
    for attempt in range(1, 4):
        (start,) = sent(out, ToCloud)
        out = h.link.on_cloud_message(json.dumps([4, start[1], "InternalError", "db down", {}]))
        failed = [c for c in out if isinstance(c, DeliveryFailed)]
        if attempt < 3:
            assert failed and not failed[0].parked and sent(out, ToCloud) == []
            assert h.link.on_timer() == []  # not yet
            h.clock.now += 10 * attempt
            out = h.link.on_timer()
    parked = [c for c in out if isinstance(c, DeliveryFailed)]
    assert [c.message.action for c in parked] == ["StartTransaction", "StopTransaction"]
    assert all(c.parked for c in parked)
    assert "not accepted" in parked[1].error
    # A live message of the parked transaction is queued (and will be parked), never sent
    # with a local id the cloud does not know.
    out = h.charger("m", "MeterValues", METER)
    assert sent(out, ToCloud) == []


def test_cloud_calls_get_the_chargers_transaction_id_and_live_calls_the_clouds() -> None:
    h = Harness(transaction_ids={LOCAL: 77})
    h.load()
    h.link.cloud_connected()
    out = h.link.on_cloud_message(call("r", "RemoteStopTransaction", {"transactionId": 77}))
    assert sent(out, ToCharger) == [[2, "r", "RemoteStopTransaction", {"transactionId": LOCAL}]]
    out = h.link.on_charger_message(result("r", {"status": "Accepted"}))
    assert sent(out, ToCloud) == [[3, "r", {"status": "Accepted"}]]
    profile = {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "transactionId": 77,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}],
            },
        },
    }
    out = h.link.on_cloud_message(call("p", "SetChargingProfile", profile))
    assert sent(out, ToCharger)[0][3]["csChargingProfiles"]["transactionId"] == LOCAL
    h.link.on_charger_message(result("p", {"status": "Accepted"}))
    # The charger's own later messages reach the cloud with the cloud's id.
    out = h.link.on_charger_message(call("t", "StopTransaction", STOP))
    assert sent(out, ToCloud) == [[2, "t", "StopTransaction", {**STOP, "transactionId": 77}]]


def test_boot_goes_before_the_outbox_and_large_outboxes_load_in_windows() -> None:
    h = Harness()
    first = [
        QueuedMessage(i, "CP1", "MeterValues", {**METER, "transactionId": 9}, 0.0, 0, 9)
        for i in (1, 2)
    ]
    h.load(first, more=True)
    h.link.cloud_unreachable()
    h.link.on_charger_message(
        call("b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    )
    h.link.local_answer(
        "b", frames.make_result("b", {"status": "Accepted", "currentTime": "x", "interval": 60})
    )
    out = h.link.cloud_connected()
    assert [m[2] for m in sent(out, ToCloud)] == ["BootNotification"]
    out = h.link.on_cloud_message(
        result(sent(out, ToCloud)[0][1], {"status": "Accepted", "currentTime": "x", "interval": 60})
    )
    # The window is under half full: the next one is read while the cloud answers the first
    # message (after seq 2, once), not after the window ran dry.
    (meter,) = sent(out, ToCloud)
    assert [c for c in out if isinstance(c, LoadOutbox)] == [LoadOutbox(2)]
    out = h.link.outbox_loaded(
        [QueuedMessage(3, "CP1", "MeterValues", METER, 0.0, 0, LOCAL)], False
    )
    assert sent(out, ToCloud) == []  # one call in flight
    sent_seqs = []
    for _ in range(3):
        out = h.link.on_cloud_message(result(meter[1]))
        assert not [c for c in out if isinstance(c, LoadOutbox)]
        delivered = [c.message.seq for c in out if isinstance(c, Delivered)]
        sent_seqs.extend(delivered)
        calls = sent(out, ToCloud)
        if not calls:
            break
        (meter,) = calls
    assert sent_seqs == [1, 2, 3]


def test_cloud_loss_during_replay_keeps_the_message_at_the_head() -> None:
    h = Harness()
    h.offline()
    h.charger("s", "StartTransaction", START)
    (start,) = sent(h.link.cloud_connected(), ToCloud)
    h.link.cloud_disconnected()
    (again,) = sent(h.link.cloud_connected(), ToCloud)
    assert again[2:] == start[2:] and again[1] != start[1]  # same message, new message id


def test_a_frame_decided_for_a_lost_cloud_link_is_known_stale() -> None:
    # The shell carries commands out later; a frame for a link that went and came back
    # meanwhile must not go out on the new link (the message was re-routed already).
    h = Harness()
    h.load()
    h.link.cloud_connected()
    out = h.link.on_charger_message(call("h", "Heartbeat", {}))
    (frame,) = [c for c in out if isinstance(c, ToCloud)]
    assert frame.epoch == h.link.cloud_epoch
    h.link.cloud_disconnected()
    h.link.cloud_connected()
    assert frame.epoch != h.link.cloud_epoch


def test_requeued_parked_messages_are_read_again_from_the_start() -> None:
    h = Harness()
    h.load([QueuedMessage(5, "CP1", "MeterValues", METER, 0.0, 0, LOCAL)])
    (frame,) = sent(h.link.cloud_connected(), ToCloud)  # the message goes out...
    assert h.link.reload_outbox() == []  # ...and the caretaker requeues parked ones meanwhile
    out = h.link.on_cloud_message(result(frame[1]))
    assert any(isinstance(c, Delivered) for c in out)
    assert LoadOutbox(0) in out  # from the start: requeued rows have older seq numbers


def test_on_a_new_connection_transaction_messages_are_checked_until_the_first_new_one() -> None:
    h = Harness(check_resent=True)
    h.load()
    h.link.cloud_connected()
    out = h.link.on_charger_message(call("s", "StartTransaction", START))
    assert [type(c) for c in out] == [AnswerIfResent]
    # A copy: answered as the first time, not relayed.
    answer = frames.make_result("s", {"transactionId": LOCAL, "idTagInfo": {"status": "Accepted"}})
    out = h.link.resent_checked("s", answer)
    assert sent(out, ToCloud) == [] and sent(out, ToCharger)[0][2]["transactionId"] == LOCAL
    # Not a copy: relayed live, and everything after it is new.
    out = h.link.on_charger_message(call("m", "MeterValues", METER))
    assert [type(c) for c in out] == [AnswerIfResent]
    out = h.link.resent_checked("m", None)
    (meter,) = sent(out, ToCloud)
    assert meter[1:3] == ["m", "MeterValues"]
    h.link.on_cloud_message(result("m"))
    out = h.link.on_charger_message(call("t", "StopTransaction", STOP))
    assert sent(out, ToCloud)[0][1:3] == ["t", "StopTransaction"]
    # A heartbeat is never checked.
    h2 = Harness(check_resent=True)
    h2.load()
    h2.link.cloud_connected()
    assert sent(h2.link.on_charger_message(call("h", "Heartbeat", {})), ToCloud)


def test_a_stale_resend_check_answer_is_ignored() -> None:
    h = Harness(check_resent=True)
    h.load()
    h.link.cloud_connected()
    h.link.on_charger_message(call("m", "MeterValues", METER))
    assert h.link.resent_checked("other", None) == []


def test_a_long_outage_keeps_one_window_in_memory_and_replays_all_in_order() -> None:
    h = Harness()
    h.offline()
    h.charger("s", "StartTransaction", START)
    total = 2 * OUTBOX_WINDOW + 7
    for i in range(total - 1):
        h.charger(
            f"m{i}",
            "MeterValues",
            {**METER, "meterValue": [{"timestamp": str(i), "sampledValue": [{"value": "1"}]}]},
        )
    assert len(h.queued) == total
    assert h.link.outbox_window == OUTBOX_WINDOW  # the rest waits on disk
    out = h.link.cloud_connected()
    replayed: list[str] = []
    for _ in range(total + 10):
        calls = sent(out, ToCloud)
        for load in [c for c in out if isinstance(c, LoadOutbox)]:  # the fake shell reads
            after = [m for m in h.queued if m.seq > load.after]
            calls += sent(
                h.link.outbox_loaded(after[:OUTBOX_WINDOW], len(after) > OUTBOX_WINDOW), ToCloud
            )
            # One window, plus what was left of the last when the next was read ahead.
            assert h.link.outbox_window <= OUTBOX_WINDOW + OUTBOX_WINDOW // 2
        if not calls:
            break
        (message,) = calls
        replayed.append(
            message[2]
            if message[2] == "StartTransaction"
            else message[3]["meterValue"][0]["timestamp"]
        )
        payload = (
            {"transactionId": 5, "idTagInfo": {"status": "Accepted"}}
            if message[2] == "StartTransaction"
            else {}
        )
        out = h.link.on_cloud_message(result(message[1], payload))
    assert replayed == ["StartTransaction", *(str(i) for i in range(total - 1))]
    assert not h.link.outbox_pending


def test_the_next_message_goes_before_a_delivered_meter_value_is_committed() -> None:
    h = Harness()
    h.offline()
    h.charger("s", "StartTransaction", START)
    h.charger("m", "MeterValues", METER)
    h.charger("t", "StopTransaction", STOP)
    (start,) = sent(h.link.cloud_connected(), ToCloud)
    # A start is committed before anything carries its cloud id.
    out = h.link.on_cloud_message(
        result(start[1], {"transactionId": 77, "idTagInfo": {"status": "Accepted"}})
    )
    kinds = [type(c).__name__ for c in out]
    assert kinds.index("Delivered") < kinds.index("ToCloud")
    (meter,) = sent(out, ToCloud)
    # Any other message: the next one is on its way first, the commit follows.
    out = h.link.on_cloud_message(result(meter[1]))
    kinds = [type(c).__name__ for c in out]
    assert kinds.index("ToCloud") < kinds.index("Delivered")
    assert [c.message.action for c in out if isinstance(c, Delivered)] == ["MeterValues"]


def _stored(seq: int, action: str, payload: dict[str, Any], tx: int | None) -> QueuedMessage:
    """A queued message as the store loads it: with its payload's stored text."""
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    return QueuedMessage(seq, "CP1", action, json.loads(text), 0.0, 0, tx, text)


def test_a_replayed_frame_built_from_the_stored_text_is_the_payload_s_encoding() -> None:
    """The frame is the stored text (remapped id replaced in it), character for character what
    encoding the payload gives; a text with a second transactionId key is encoded instead."""
    nested = {**METER, "meterValue": [{"transactionId": LOCAL, "x": '"transactionId":1'}]}
    odd = {**STOP, "idTag": 'a"transactionId":2000000001', "reason": "é"}
    queued = [
        _stored(1, "StartTransaction", START, LOCAL),
        _stored(2, "MeterValues", METER, LOCAL),
        _stored(3, "MeterValues", nested, LOCAL),
        _stored(4, "StopTransaction", odd, LOCAL),
    ]
    h = Harness()
    h.load(queued)
    out = h.link.cloud_connected()
    frames_sent: list[str] = []
    while True:
        (frame,) = [c.frame for c in out if isinstance(c, ToCloud)]
        frames_sent.append(frame)
        message = json.loads(frame)
        if message[2] == "StopTransaction":
            break
        answer = {"transactionId": 77, "idTagInfo": {"status": "Accepted"}}
        out = h.link.on_cloud_message(result(message[1], answer if len(frames_sent) == 1 else {}))
    expected = [START, *({**q.payload, "transactionId": 77} for q in queued[1:])]
    for frame, payload in zip(frames_sent, expected, strict=True):
        message = json.loads(frame)
        assert message[3] == payload
        assert frame == frames.make_call(message[1], message[2], message[3]).raw
