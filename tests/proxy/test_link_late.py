"""The relay core against a real CSMS's timing: slow answers, late answers, chargers that leave.

A CALL sent to the cloud is outstanding until the cloud answers it or the connection closes,
whatever the gateway has told the charger meanwhile: never two at once, and a late answer
completes the message instead of being dropped.
"""

import json
import logging
from typing import Any

import pytest

from edgegw.proxy import frames
from edgegw.proxy.link import (
    MAX_QUEUED_TO_CHARGER,
    AnswerIfResent,
    AnswerLocally,
    CloseCloud,
    CloudVerdict,
    Command,
    Delivered,
    DeliveryFailed,
    Exchanged,
    ToCharger,
    ToCloud,
)
from edgegw.store.outbox import QueuedMessage
from tests.proxy.test_link import call, result, sent
from tests.proxy.test_link_outbox import LOCAL, METER, START, STOP, Harness

ACCEPTED = {"status": "Accepted"}


class Shell(Harness):
    """The harness, carrying out every local answer the link asks for, as the I/O shell does."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outstanding: list[str] = []  # ids of CALLs the cloud has not answered

    def carry(self, out: list[Command]) -> list[Command]:
        done: list[Command] = []
        for command in out:
            done.append(command)
            if isinstance(command, ToCloud):
                frame = json.loads(command.frame)
                if frame[0] == 2:
                    assert not self.outstanding, f"second CALL {frame} while {self.outstanding}"
                    self.outstanding.append(frame[1])
            if isinstance(command, AnswerLocally):
                done.extend(self.carry(self._answer(command)))
        return done

    def _answer(self, command: AnswerLocally) -> list[Command]:
        c = command.call
        if not command.queue:
            return self.link.local_answer(c.id, frames.make_result(c.id, {"currentTime": "x"}))
        seq = next(self.seq)
        if c.action == "StartTransaction":
            tx = next(self.next_local)
            queued = QueuedMessage(seq, "CP1", c.action, c.payload, self.clock.now, 0, tx)
            answer = frames.make_result(c.id, {"transactionId": tx, "idTagInfo": ACCEPTED})
        else:
            local = c.payload.get("transactionId")
            queued = QueuedMessage(seq, "CP1", c.action, c.payload, self.clock.now, 0, local)
            answer = frames.make_result(c.id, {})
        self.queued.append(queued)
        return self.link.local_answer(c.id, answer, queued)

    def from_charger(self, message_id: str, action: str, payload: dict[str, Any]) -> list[Command]:
        return self.carry(self.link.on_charger_message(call(message_id, action, payload)))

    def from_cloud(self, message_id: str, payload: dict[str, Any] | None = None) -> list[Command]:
        self.outstanding.remove(message_id)
        return self.carry(self.link.on_cloud_message(result(message_id, payload)))

    def tick(self, seconds: float) -> list[Command]:
        self.clock.now += seconds
        return self.carry(self.link.on_timer())

    def online(self) -> list[Command]:
        self.load()
        return self.carry(self.link.cloud_connected())

    def closed(self) -> list[Command]:
        self.outstanding.clear()
        return self.carry(self.link.cloud_disconnected())


def delivered(out: list[Command]) -> list[Delivered]:
    return [c for c in out if isinstance(c, Delivered)]


def test_a_late_answer_to_a_heartbeat_frees_the_link_and_the_next_call_waits_for_it() -> None:
    s = Shell()
    s.online()
    s.from_charger("h1", "Heartbeat", {})
    out = s.tick(31)
    assert sent(out, ToCharger) == [[3, "h1", {"currentTime": "x"}]]  # answered by the gateway
    # The cloud still works on h1: the next call is not sent on top of it.
    assert sent(s.from_charger("h2", "Heartbeat", {}), ToCloud) == []
    out = s.from_cloud("h1", {"currentTime": "late"})
    assert sent(out, ToCharger) == []  # the charger had its answer
    (h2,) = sent(out, ToCloud)
    assert h2[1:3] == ["h2", "Heartbeat"]
    assert sent(s.from_cloud("h2", {"currentTime": "t"}), ToCharger) == [
        [3, "h2", {"currentTime": "t"}]
    ]


def test_a_call_behind_a_stalled_one_is_answered_locally_at_its_own_deadline() -> None:
    s = Shell()
    s.online()
    s.from_charger("h1", "Heartbeat", {})
    s.tick(31)
    s.from_charger(
        "b", "StatusNotification", {"connectorId": 1, "status": "Available", "errorCode": "NoError"}
    )
    out = s.tick(29)
    assert sent(out, ToCharger) == []
    out = s.tick(2)
    assert sent(out, ToCharger) == [[3, "b", {"currentTime": "x"}]]
    # The cloud answers h1 at last: the status it never saw is replayed to it first.
    out = s.from_cloud("h1", {"currentTime": "late"})
    (replayed,) = sent(out, ToCloud)
    assert replayed[2] == "StatusNotification" and replayed[3]["status"] == "Available"


def test_a_late_answer_to_a_start_completes_it_and_it_is_never_sent_again() -> None:
    s = Shell()
    s.online()
    s.from_charger("s", "StartTransaction", START)
    out = s.tick(31)
    (answer,) = sent(out, ToCharger)
    assert answer[2]["transactionId"] == LOCAL  # the gateway's id, committed to the outbox
    # The charger goes on with its session while the cloud still works on the start.
    out = s.from_charger("m", "MeterValues", METER)
    assert sent(out, ToCharger) == [[3, "m", {}]] and sent(out, ToCloud) == []
    out = s.from_cloud("s", {"transactionId": 6, "idTagInfo": ACCEPTED})
    (done,) = delivered(out)
    assert done.message.action == "StartTransaction" and done.cloud_transaction_id == 6
    (meter,) = sent(out, ToCloud)  # the next queued message, not the start again
    assert meter[2] == "MeterValues" and meter[3]["transactionId"] == 6
    out = s.from_cloud(meter[1])
    assert [d.message.action for d in delivered(out)] == ["MeterValues"]
    assert sent(out, ToCloud) == []
    assert not s.link.owes_cloud


def test_a_late_answer_that_comes_while_the_local_answer_is_made_completes_it() -> None:
    s = Shell()
    s.online()
    s.from_charger("s", "StartTransaction", START)
    s.clock.now += 31
    (local,) = s.link.on_timer()
    assert isinstance(local, AnswerLocally) and local.queue
    # The cloud's answer arrives before the outbox commit is done.
    s.outstanding.remove("s")
    assert s.link.on_cloud_message(result("s", {"transactionId": 6, "idTagInfo": ACCEPTED})) == []
    out = s.carry(s.link.local_answer("s", *_queued_start(s, "s")))
    assert sent(out, ToCharger)[0][2]["transactionId"] == LOCAL
    (done,) = delivered(out)
    assert done.cloud_transaction_id == 6
    assert not s.link.owes_cloud


def _queued_start(s: Shell, message_id: str) -> tuple[frames.CallResult, QueuedMessage]:
    queued = QueuedMessage(next(s.seq), "CP1", "StartTransaction", START, s.clock.now, 0, LOCAL)
    answer = frames.make_result(message_id, {"transactionId": LOCAL, "idTagInfo": ACCEPTED})
    return answer, queued


def test_an_answer_after_the_charger_left_is_kept_so_its_copy_never_reaches_the_cloud() -> None:
    s = Shell(check_resent=True)
    s.online()
    s.carry(s.link.on_charger_message(call("s", "StartTransaction", START)))
    (check,) = s.carry(s.link.resent_checked("s", None))  # new: relayed
    assert isinstance(check, ToCloud)
    s.outstanding.append("s")
    s.link.charger_closed()
    assert s.link.owes_cloud  # the cloud connection stays for the answer
    out = s.from_cloud("s", {"transactionId": 6, "idTagInfo": ACCEPTED})
    assert sent(out, ToCharger) == []  # nobody to tell
    assert [q.action for q in s.queued] == ["StartTransaction"]  # committed, so a copy is known
    (done,) = delivered(out)
    assert done.cloud_transaction_id == 6
    # The charger comes back and sends the start again: it is looked up, not relayed.
    s.link.charger_attached()
    out = s.carry(s.link.on_charger_message(call("s2", "StartTransaction", START)))
    assert [type(c) for c in out] == [AnswerIfResent]


def test_a_copy_sent_while_the_cloud_still_works_on_the_first_waits_for_its_answer() -> None:
    s = Shell(check_resent=True)
    s.online()
    s.carry(s.link.on_charger_message(call("s", "StartTransaction", START)))
    s.carry(s.link.resent_checked("s", None))
    s.outstanding.append("s")
    s.link.charger_closed()
    s.link.charger_attached()
    # The copy is not even looked up before the cloud's answer is recorded.
    assert s.carry(s.link.on_charger_message(call("s2", "StartTransaction", START))) == []
    out = s.from_cloud("s", {"transactionId": 6, "idTagInfo": ACCEPTED})
    kinds = [type(c) for c in out]
    assert kinds.index(Delivered) < kinds.index(AnswerIfResent)


def test_a_closed_connection_makes_the_fate_unknown_and_concurrent_tx_is_never_id_zero(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = Shell()
    s.online()
    s.from_charger("s", "StartTransaction", START)
    out = s.closed()  # no answer: the cloud may or may not have it
    assert sent(out, ToCharger)[0][2]["transactionId"] == LOCAL
    s.from_charger("m", "MeterValues", METER)
    s.from_charger("t", "StopTransaction", STOP)
    out = s.online()
    (start,) = sent(out, ToCloud)
    assert start[2:] == ["StartTransaction", START]  # the at-least-once window: sent again
    # The cloud had it: a real CSMS answers the copy ConcurrentTx with transactionId 0.
    with caplog.at_level(logging.WARNING):
        out = s.from_cloud(start[1], {"transactionId": 0, "idTagInfo": {"status": "ConcurrentTx"}})
    (done,) = delivered(out)
    assert done.cloud_transaction_id is None  # never 0
    assert "already had this StartTransaction" in caplog.text
    parked = [c for c in out if isinstance(c, DeliveryFailed)]
    assert [p.message.action for p in parked] == ["MeterValues", "StopTransaction"]
    assert all(p.parked and "ConcurrentTx" in p.error for p in parked)
    assert all(f[3].get("transactionId") != 0 for f in sent(out, ToCloud))


def test_a_call_the_cloud_never_answers_closes_the_connection_after_the_stall_limit() -> None:
    s = Shell()
    s.online()
    s.from_charger("h", "Heartbeat", {})
    assert not any(isinstance(c, CloseCloud) for c in s.tick(31))
    assert not any(isinstance(c, CloseCloud) for c in s.tick(60))
    out = s.tick(30)  # 4 x call_timeout after it was sent
    assert [c for c in out if isinstance(c, CloseCloud)]


def test_queued_messages_wait_for_an_outstanding_outbox_message() -> None:
    s = Shell()
    s.load()
    s.link.cloud_unreachable()
    s.from_charger("s", "StartTransaction", START)
    s.from_charger("m", "MeterValues", METER)
    out = s.carry(s.link.cloud_connected())
    (start,) = sent(out, ToCloud)
    out = s.tick(31)  # overdue: no retry on top of it, no failure counted
    assert sent(out, ToCloud) == [] and not [c for c in out if isinstance(c, DeliveryFailed)]
    out = s.from_cloud(start[1], {"transactionId": 9, "idTagInfo": ACCEPTED})
    (meter,) = sent(out, ToCloud)
    assert meter[3]["transactionId"] == 9


def test_the_authorize_deadline_is_named_when_it_expires(caplog: pytest.LogCaptureFixture) -> None:
    s = Shell(authorize_timeout=3)
    s.online()
    s.from_charger("a", "Authorize", {"idTag": "AABBCCDD"})
    with caplog.at_level(logging.WARNING):
        out = s.tick(3.5)
    assert any(isinstance(c, Exchanged) for c in out)
    assert "within 3 s (auth.online_timeout)" in caplog.text
    assert "30 s" not in caplog.text


def test_cloud_calls_waiting_for_one_charger_are_bounded() -> None:
    s = Shell()
    s.online()
    for n in range(MAX_QUEUED_TO_CHARGER):
        s.link.on_cloud_message(call(f"k{n}", "ClearCache", {}))
    out = s.link.on_cloud_message(call("over", "ClearCache", {}))
    (error,) = sent(out, ToCloud)
    assert error[:3] == [4, "over", "GenericError"]
    assert s.link.queued_to_charger == MAX_QUEUED_TO_CHARGER


ALFEN_METER = {
    "connectorId": 1,
    "transactionId": 9223372036854775807,
    "meterValue": [
        {
            "timestamp": "2026-01-01T10:30:00Z",
            "sampledValue": [{"value": "16", "context": "CurrentMax"}],  # not a 1.6 context
        }
    ],
}


def test_an_invalid_but_usable_transaction_message_is_relayed_not_refused() -> None:
    """A charger answered with an error for its own transaction message re-sends it for ever
    (Alfen, lbbrhzn/ocpp #361, ocpp-go #188): the gateway relays what it can queue."""
    s = Shell()
    s.online()
    out = s.from_charger("m", "MeterValues", ALFEN_METER)
    assert sent(out, ToCharger) == []
    (relayed,) = sent(out, ToCloud)
    assert relayed[1:] == ["m", "MeterValues", ALFEN_METER]
    # Missing what the gateway itself needs: still refused, with the schema's error.
    out = s.from_charger("t", "StopTransaction", {"transactionId": 5})
    (error,) = sent(out, ToCharger)
    assert error[0] == 4 and error[1] == "t"


STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


def test_a_call_answered_at_its_deadline_is_not_answered_again_when_the_link_closes() -> None:
    s = Shell()
    s.online()
    s.from_charger("s1", "StatusNotification", STATUS)
    assert sent(s.tick(31), ToCharger) == [[3, "s1", {"currentTime": "x"}]]
    assert any(isinstance(c, CloseCloud) for c in s.tick(100))  # the stall limit
    out = s.closed() + s.online() + s.tick(1)
    assert sent(out, ToCharger) == []  # answered once
    (replayed,) = [f for f in sent(out, ToCloud) if f[0] == 2]  # the status, for the cloud
    assert replayed[2:] == ["StatusNotification", STATUS]


def test_a_status_the_cloud_answers_late_is_not_replayed_to_it() -> None:
    s = Shell()
    s.online()
    s.from_charger("s1", "StatusNotification", STATUS)
    s.tick(31)
    out = s.from_cloud("s1")
    assert [f for f in sent(out, ToCloud) if f[0] == 2] == []


def test_a_charger_call_behind_replays_is_answered_at_its_own_deadline() -> None:
    s = Shell(authorize_timeout=3)
    s.load()
    s.link.cloud_unreachable()
    s.from_charger("b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    s.from_charger("s1", "StatusNotification", STATUS)
    s.carry(s.link.cloud_connected())  # the replayed boot goes; the cloud stalls on it
    s.from_charger("a", "Authorize", {"idTag": "AABBCCDD"})
    assert s.link.next_deadline() == s.clock.now + 3
    assert sent(s.tick(3.5), ToCharger)[0][1] == "a"


def test_a_start_checked_for_copies_after_its_charger_left_goes_no_further() -> None:
    s = Shell(check_resent=True)
    s.online()
    s.carry(s.link.on_charger_message(call("a1", "StartTransaction", START)))
    s.link.charger_closed()  # during the outbox lookup
    out = s.carry(s.link.resent_checked("a1", None))
    assert sent(out, ToCloud) == []  # the charger sends it again, if at all


def test_a_late_answer_after_a_failed_local_commit_is_not_a_second_answer() -> None:
    s = Shell(check_resent=True)
    s.online()
    s.carry(s.link.on_charger_message(call("s", "StartTransaction", START)))
    s.carry(s.link.resent_checked("s", None))
    s.clock.now += 31
    (_local,) = [c for c in s.link.on_timer() if isinstance(c, AnswerLocally)]
    failed = frames.make_error("s", "InternalError", "gateway could not store the message; retry")
    assert sent(s.link.local_answer("s", failed, None), ToCharger)[0][0] == 4
    out = s.from_cloud("s", {"transactionId": 6, "idTagInfo": ACCEPTED})
    assert sent(out, ToCharger) == []  # the charger had its answer; it sends the start again
    (done,) = delivered(out)  # recorded, so that copy is recognised
    assert done.cloud_transaction_id == 6
    out = s.carry(s.link.on_charger_message(call("s2", "StartTransaction", START)))
    assert [type(c) for c in out] == [AnswerIfResent]


def test_the_clouds_late_verdict_on_a_card_is_kept_for_offline_decisions() -> None:
    s = Shell(authorize_timeout=3)
    s.online()
    s.from_charger("a", "Authorize", {"idTag": "AABBCCDD"})
    s.tick(3.5)  # answered by the gateway
    out = s.from_cloud("a", {"idTagInfo": {"status": "Blocked"}})
    (verdict,) = [c for c in out if isinstance(c, CloudVerdict)]
    assert verdict.answer.payload["idTagInfo"]["status"] == "Blocked"
    assert sent(out, ToCharger) == []
