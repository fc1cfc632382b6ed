"""The gateway's own answers to a 2.x charger (edgegw.proxy.local201) over a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgegw.proxy.frames import CallError, CallResult, make_call
from edgegw.proxy.idtokens import id_tag_info, id_token_info
from edgegw.proxy.local import LocalResponder
from edgegw.proxy.local201 import offline_event
from edgegw.proxy.rules import (
    LearnCard,
    RecordMeter201,
    card_answer,
    records_of,
    remote_start_token,
)
from edgegw.store.store import Store

EVENT = {
    "eventType": "Updated",
    "timestamp": "2026-12-07T10:00:00Z",
    "triggerReason": "MeterValuePeriodic",
    "seqNo": 7,
    "transactionInfo": {"transactionId": "tx-1"},
}


class _Cards:
    """Decides from a table, remembering what it was asked (card UIDs and tokens alike)."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.table = {
            "04A1B2C3": {"status": "Accepted", "expiryDate": "2027-01-01T00:00:00Z"},
            "APP-1": {"status": "Accepted", "parentIdTag": "FLEET"},
        }

    def id_tag_info(self, charger_id: str, id_tag: str, *, literal: bool = False) -> dict[str, Any]:
        self.asked.append(id_tag)
        return dict(self.table.get(id_tag, {"status": "Invalid"}))

    def learn(self, charger_id: str, id_tag: str, id_tag_info: dict[str, Any]) -> None:
        return None

    async def answer_cloud(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {}

    def free_charging(self, charger_id: str) -> bool:
        return False

    def override_answer(self, *args: Any) -> None:
        return None

    def refuse_cloud_call(self, *args: Any) -> None:
        return None


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    store = await Store.open(tmp_path / "edgegw.db")
    yield store
    await store.close()


def _responder(store: Store, cards: _Cards) -> LocalResponder:
    return LocalResponder(
        store,
        standalone=False,
        heartbeat_interval=300,
        cards=cards,  # type: ignore[arg-type]
        clock=lambda: 1_772_000_000.0,
    )


def test_a_16_id_tag_info_in_201_form() -> None:
    assert id_token_info(
        {"status": "Accepted", "expiryDate": "2027-01-01T00:00:00Z", "parentIdTag": "FLEET"}
    ) == {
        "status": "Accepted",
        "cacheExpiryDateTime": "2027-01-01T00:00:00Z",
        "groupIdToken": {"idToken": "FLEET", "type": "Central"},
    }
    assert id_token_info({"status": "Blocked"}) == {"status": "Blocked"}


@pytest.mark.parametrize(
    ("id_token", "status", "asked"),
    [
        ({"idToken": "04A1B2C3", "type": "ISO14443"}, "Accepted", ["04A1B2C3"]),
        ({"idToken": "APP-1", "type": "Central"}, "Accepted", ["APP-1"]),
        ({"idToken": "DE8EO1234567", "type": "eMAID"}, "Invalid", ["DE8EO1234567"]),
        ({"idToken": "", "type": "NoAuthorization"}, "Accepted", []),
        ({"idToken": "", "type": "ISO14443"}, "Invalid", []),
        ({"type": "ISO14443"}, "Invalid", []),
    ],
)
async def test_authorize_is_answered_from_the_card_layers(
    store: Store, id_token: dict[str, Any], status: str, asked: list[str]
) -> None:
    cards = _Cards()
    answer = await _responder(store, cards).answer(
        "CS1", make_call("a1", "Authorize", {"idToken": id_token}), v2=True
    )
    assert isinstance(answer, CallResult)
    assert answer.payload["idTokenInfo"]["status"] == status
    assert cards.asked == asked


async def test_a_transaction_event_is_queued_with_offline_set_and_a_copy_is_known(
    store: Store,
) -> None:
    responder = _responder(store, _Cards())
    first = make_call("t1", "TransactionEvent", EVENT)
    answer, queued = await responder.queue("CS1", first, v2=True)
    assert isinstance(answer, CallResult) and answer.payload == {}  # no idToken: no idTokenInfo
    assert queued is not None and queued.payload == {**EVENT, "offline": True}
    # The station sends it again, with the flag or without: the same event, not queued twice.
    for copy in (EVENT, offline_event(EVENT)):
        again = make_call("t2", "TransactionEvent", copy)
        resent = await responder.answer_if_resent("CS1", again, v2=True)
        assert isinstance(resent, CallResult) and resent.payload == {}
    messages, _ = await store.outbox.load("CS1")
    assert [(m.action, m.payload["seqNo"], m.payload["offline"]) for m in messages] == [
        ("TransactionEvent", 7, True)
    ]
    with_token = {**EVENT, "seqNo": 8, "idToken": {"idToken": "04A1B2C3", "type": "ISO14443"}}
    answer, _ = await responder.queue(
        "CS1", make_call("t3", "TransactionEvent", with_token), v2=True
    )
    assert isinstance(answer, CallResult)
    assert answer.payload["idTokenInfo"]["status"] == "Accepted"


async def test_calls_without_a_local_answer_get_not_supported(store: Store) -> None:
    responder = _responder(store, _Cards())
    call = make_call("x1", "NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": {}})
    answer = await responder.answer("CS1", call, v2=True)
    assert isinstance(answer, CallError) and answer.code == "NotSupported"
    for action in ("NotifyEvent", "NotifyReport", "SecurityEventNotification", "MeterValues"):
        result = await responder.answer("CS1", make_call("n", action, {}), v2=True)
        assert isinstance(result, CallResult) and result.payload == {}


@pytest.mark.parametrize(
    ("action", "payload", "token"),
    [
        ("RemoteStartTransaction", {"connectorId": 1, "idTag": "ABC"}, "ABC"),
        (
            "RequestStartTransaction",
            {"remoteStartId": 1, "idToken": {"idToken": "APP-1", "type": "Central"}},
            "APP-1",
        ),
        ("RequestStartTransaction", {"remoteStartId": 1}, None),
        ("Reset", {"type": "Immediate"}, None),
    ],
)
def test_the_card_of_a_remote_start_in_either_version(
    action: str, payload: dict[str, Any], token: str | None
) -> None:
    """A session the cloud started is honoured offline (edgegw.proxy.rules.RemoteStarts)."""
    assert remote_start_token(action, payload) == token


async def test_a_transaction_event_of_a_remote_start_is_honoured(store: Store) -> None:
    """The cloud's RequestStartTransaction for a token the site does not know: its session's
    TransactionEvent, answered offline, keeps the cloud's word (Accepted)."""
    responder = _responder(store, _Cards())
    responder.cloud_started("CS1", "UNKNOWN-APP")
    event = {
        **EVENT,
        "eventType": "Started",
        "idToken": {"idToken": "UNKNOWN-APP", "type": "Central"},
    }
    answer, _ = await responder.queue("CS1", make_call("t1", "TransactionEvent", event), v2=True)
    assert isinstance(answer, CallResult)
    assert answer.payload["idTokenInfo"] == {"status": "Accepted"}
    authorize = make_call("a1", "Authorize", {"idToken": event["idToken"]})
    other = await _responder(store, _Cards()).answer("CS1", authorize, v2=True)
    assert isinstance(other, CallResult) and other.payload["idTokenInfo"]["status"] == "Invalid"


def test_the_clouds_id_token_info_in_16_form_only_for_statuses_16_has() -> None:
    assert id_tag_info(
        {
            "status": "Accepted",
            "cacheExpiryDateTime": "2027-01-01T00:00:00Z",
            "groupIdToken": {"idToken": "FLEET", "type": "Central"},
        }
    ) == {"status": "Accepted", "expiryDate": "2027-01-01T00:00:00Z", "parentIdTag": "FLEET"}
    for status in ("NotAtThisLocation", "NotAtThisTime", "NotAllowedTypeEVSE", "NoCredit"):
        assert id_tag_info({"status": status}) is None
    assert id_tag_info("Accepted") is None


def test_the_clouds_answer_to_a_201_card_is_learnt() -> None:
    """Authorize and TransactionEvent answered by the cloud: learnt, in 1.6 form, under the
    token's text; never from the gateway's own answer, never for NoAuthorization."""
    request = {"idToken": {"idToken": "04A1B2C3", "type": "ISO14443"}}
    response = {"idTokenInfo": {"status": "Blocked"}}
    learn = LearnCard("04A1B2C3", {"status": "Blocked"})
    assert records_of("Authorize", request, response, "cloud", v2=True) == [learn]
    assert records_of("Authorize", request, response, "gateway", v2=True) == []
    event = {**EVENT, **request}
    assert records_of("TransactionEvent", event, response, "cloud", v2=True) == [
        learn,
        RecordMeter201("tx-1", None, "04A1B2C3"),  # the session's card if it has none
    ]
    free = {"idToken": {"idToken": "", "type": "NoAuthorization"}}
    assert card_answer(free, {"idTokenInfo": {"status": "Accepted"}}) is None
    assert card_answer({"idTag": "ABC"}, {"idTagInfo": {"status": "Invalid"}}) == LearnCard(
        "ABC", {"status": "Invalid"}
    )
