"""The relay's business rules, decided without sockets or a database."""

from edgegw.proxy.rules import (
    InvalidIdAction,
    LearnCard,
    OfflineStartRefused,
    QueuedRecord,
    RecordBoot,
    RecordStart,
    RecordStatus,
    RecordStop,
    RemoteStarts,
    card_answer,
    invalid_id_action,
    offline_start_refused,
    queued_record,
    records_of,
)

START = {"connectorId": 1, "idTag": "AABB", "meterStart": 0, "timestamp": "2026-01-01T10:00:00Z"}
STOP = {"transactionId": 7, "meterStop": 10, "timestamp": "2026-01-01T11:00:00Z", "idTag": "AABB"}
ACCEPTED = {"idTagInfo": {"status": "Accepted"}}


def test_a_card_is_learnt_only_from_an_answer_about_the_calls_card() -> None:
    assert card_answer({"idTag": "AABB"}, ACCEPTED) == LearnCard("AABB", {"status": "Accepted"})
    assert card_answer({}, ACCEPTED) is None  # a stop without idTag: nothing to learn
    assert card_answer({"idTag": "AABB"}, {}) is None
    assert card_answer({"idTag": "AABB"}, {"idTagInfo": "Accepted"}) is None  # not an object
    assert card_answer({"idTag": 17}, ACCEPTED) is None


def test_a_start_the_cloud_answered_is_recorded_with_its_id_and_its_card_learnt() -> None:
    answer = {"transactionId": 42, **ACCEPTED}
    assert records_of("StartTransaction", START, answer, "cloud") == [
        LearnCard("AABB", {"status": "Accepted"}),
        RecordStart(START, 42),
    ]
    # No usable id from the cloud: the session is recorded all the same, without one.
    assert records_of("StartTransaction", START, {"transactionId": "x", **ACCEPTED}, "cloud")[
        1
    ] == RecordStart(START, None)


def test_what_the_gateway_answered_itself_is_neither_learnt_nor_recorded_here() -> None:
    # The local responder records the sessions it answers when it answers them; a card is
    # learnt only from the cloud's own word.
    assert records_of("StartTransaction", START, {"transactionId": 9, **ACCEPTED}, "gateway") == []
    assert records_of("StopTransaction", STOP, ACCEPTED, "gateway") == []
    assert records_of("Authorize", {"idTag": "AABB"}, ACCEPTED, "gateway") == []


def test_stops_authorizations_boots_and_statuses() -> None:
    assert records_of("StopTransaction", STOP, ACCEPTED, "cloud") == [
        LearnCard("AABB", {"status": "Accepted"}),
        RecordStop(STOP),
    ]
    assert records_of("Authorize", {"idTag": "AABB"}, ACCEPTED, "cloud") == [
        LearnCard("AABB", {"status": "Accepted"})
    ]
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
    status = {"connectorId": 1, "status": "Charging", "errorCode": "NoError"}
    for by in ("cloud", "gateway"):
        assert records_of("BootNotification", boot, {"status": "Accepted"}, by) == [
            RecordBoot(boot)
        ]
        assert records_of("StatusNotification", status, {}, by) == [RecordStatus(status)]
    assert records_of("MeterValues", {"connectorId": 1, "meterValue": []}, {}, "cloud") == []
    # A DataTransfer carrying an idTagInfo teaches nothing about cards.
    assert records_of("DataTransfer", {"idTag": "AABB"}, ACCEPTED, "cloud") == []


def test_an_offline_start_whose_card_the_cloud_refuses() -> None:
    invalid = {"transactionId": 5, "idTagInfo": {"status": "Invalid"}}
    assert offline_start_refused("StartTransaction", START, invalid, 2_000_000_001) == (
        OfflineStartRefused(2_000_000_001, "AABB", "Invalid")
    )
    blocked = {"transactionId": 5, "idTagInfo": {"status": "Blocked"}}
    refused = offline_start_refused("StartTransaction", START, blocked, 2_000_000_001)
    assert refused is not None and refused.status == "Blocked"


def test_accepted_concurrent_or_other_messages_are_not_refusals() -> None:
    local = 2_000_000_001
    accepted = {"transactionId": 5, **ACCEPTED}
    concurrent = {"transactionId": 5, "idTagInfo": {"status": "ConcurrentTx"}}
    invalid = {"idTagInfo": {"status": "Invalid"}}
    assert offline_start_refused("StartTransaction", START, accepted, local) is None
    # Most often the cloud's answer to a copy of a start it already has: never a stop.
    assert offline_start_refused("StartTransaction", START, concurrent, local) is None
    assert offline_start_refused("StopTransaction", STOP, invalid, local) is None
    assert offline_start_refused("StartTransaction", START, invalid, None) is None
    assert offline_start_refused("StartTransaction", START, {"transactionId": 5}, local) is None


def test_stop_transaction_on_invalid_id() -> None:
    def act(running: bool, policy: bool, free: bool) -> InvalidIdAction:
        return invalid_id_action(running=running, stop_on_invalid_id=policy, free=free)

    assert act(True, True, False) == InvalidIdAction(True, "stopping it")
    assert act(True, False, False) == InvalidIdAction(False, "it may finish")
    assert act(False, True, False) == InvalidIdAction(False, "it had ended")
    # Free charging is the caretaker's word that any card may charge at that charger.
    assert act(True, True, True) == InvalidIdAction(False, "it may finish (free charging is on)")
    assert act(False, True, True) == InvalidIdAction(False, "it had ended")


def test_a_remote_start_is_honoured_offline_for_a_while_per_charger_and_card() -> None:
    starts = RemoteStarts(honoured_s=600.0)
    starts.note("CP1", "aabb", now=1000.0)
    assert starts.honoured("CP1", "AABB", now=1000.0)  # idTags compare in any case
    assert starts.honoured("CP1", "aaBB", now=1599.0)
    assert not starts.honoured("CP1", "AABB", now=1600.0)
    assert not starts.honoured("CP2", "AABB", now=1000.0)  # another charger
    assert not starts.honoured("CP1", "CCDD", now=1000.0)
    starts.note("CP1", "CCDD", now=1700.0)  # forgets what has expired as it goes
    assert not starts.honoured("CP1", "AABB", now=1000.0)


def test_what_a_queued_message_records_and_a_copy_records_once() -> None:
    assert queued_record("StartTransaction", first_time=True) is QueuedRecord.START
    assert queued_record("StartTransaction", first_time=False) is QueuedRecord.START_IF_MISSING
    assert queued_record("StopTransaction", first_time=True) is QueuedRecord.STOP
    assert queued_record("StopTransaction", first_time=False) is QueuedRecord.STOP_AGAIN
    assert queued_record("MeterValues", first_time=True) is QueuedRecord.NOTHING
    assert queued_record("MeterValues", first_time=False) is QueuedRecord.NOTHING
