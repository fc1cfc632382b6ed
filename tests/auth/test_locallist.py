"""Installer cards, the card CSV, and the cloud list mirror (SendLocalList semantics)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgegw.auth.idtags import CardId
from edgegw.auth.locallist import (
    AuthStatus,
    Card,
    CardError,
    CloudList,
    CsvImportError,
    IdTagInfo,
    cards_to_csv,
    format_expiry,
    parse_cards_csv,
    parse_datetime,
    parse_expiry,
)

NOW = 1_700_000_000.0


def uid(text: str) -> CardId:
    return CardId.from_uid(bytes.fromhex(text))


def entry(tag: str, status: str | None = "Accepted", **info: Any) -> dict[str, Any]:
    if status is None:
        return {"idTag": tag}
    return {"idTag": tag, "idTagInfo": {"status": status, **info}}


def send(version: int, update: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"listVersion": version, "updateType": update, "localAuthorizationList": list(entries)}


def applied(mirror: CloudList, payload: dict[str, Any]) -> str:
    update = mirror.plan(payload)
    mirror.commit(update)
    return update.status


def contents(mirror: CloudList) -> dict[str, tuple[str, str]]:
    return {e.key: (e.id_tag, e.info.status.value) for e in mirror}


# --------------------------------------------------------------------------------------------
# Cards


def test_card_normalises_and_validates() -> None:
    card = Card(
        CardId.from_token("DEADBEEF"), status=AuthStatus("Blocked"), chargers=frozenset({"CP1"})
    )
    assert card.id == uid("DEADBEEF") and card.id.is_uid  # reads back the same from storage
    assert card.chargers == frozenset({"CP1"})
    assert card.allows("CP1") and not card.allows("CP2")
    assert Card(uid("E43AC9D2")).allows("anything")
    with pytest.raises(CardError, match="random UID"):
        Card(uid("08AABBCC"))
    with pytest.raises(CardError, match="ConcurrentTx"):
        Card(uid("E43AC9D2"), status=AuthStatus.CONCURRENT_TX)
    with pytest.raises(CardError, match="no charger"):
        Card(uid("E43AC9D2"), chargers=frozenset())
    with pytest.raises(CardError, match="parent id"):
        Card(uid("E43AC9D2"), parent_id="P" * 21)


def test_expiry_parsing() -> None:
    assert parse_expiry("2026-12-31") == datetime(2027, 1, 1, tzinfo=UTC)
    assert parse_datetime("2026-03-01T10:00:00+01:00") == datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert parse_datetime("2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="not an ISO 8601"):
        parse_datetime("tomorrow")


# --------------------------------------------------------------------------------------------
# CSV


def test_csv_round_trip() -> None:
    text = (
        "id,format,owner,label,status,expiry,chargers,parent\n"
        "e4:3a:c9:d2,,Alice,Bay 12,Accepted,2026-12-31,CP12,FLEET1\n"
        "1144201745,dec_le,Bob,,blocked,,,\n"
        "Mobile000001,token,App,,,,CP1 CP2,\n"
        "123456,token,Numeric token,,Expired,2025-01-01T12:00:00Z,,\n"
    )
    cards = parse_cards_csv(text, now=NOW)
    by_owner = {c.owner: c for c in cards}
    assert by_owner["Alice"].id == uid("E43AC9D2")
    assert by_owner["Alice"].chargers == frozenset({"CP12"})
    assert by_owner["Alice"].parent_id == "FLEET1"
    assert by_owner["Alice"].expiry == datetime(2027, 1, 1, tzinfo=UTC)
    assert by_owner["Bob"].id == uid("11223344")  # the decimal printed on the card
    assert by_owner["Bob"].status is AuthStatus.BLOCKED
    assert by_owner["App"].id == CardId.from_token("Mobile000001")
    assert by_owner["App"].chargers == frozenset({"CP1", "CP2"})
    assert by_owner["Numeric token"].id.is_token

    again = parse_cards_csv(cards_to_csv(cards), now=NOW + 1)
    assert sorted(again, key=lambda c: c.key) == sorted(cards, key=lambda c: c.key)


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ("04A1B2C3D4E5FG", "'G' (character 14) is not a hex digit"),
        ("AB:CD:EF:01Kim", "'K' (character 12) is not a hex digit"),
        ("Mobile000001", "write token in the format column"),
    ],
)
def test_csv_a_typo_in_a_uid_is_refused_not_enrolled_as_a_token(cell: str, words: str) -> None:
    with pytest.raises(CsvImportError) as caught:
        parse_cards_csv(f"id,owner\nE43AC9D2,Alice\n{cell},Bob\n", now=NOW)
    ((line, message),) = caught.value.errors
    assert line == 3 and words in message and "not a valid card UID" in message


def test_csv_an_expiry_date_reads_back_as_the_same_last_day() -> None:
    (card,) = parse_cards_csv("id,expiry\nE43AC9D2,2027-12-31\n", now=NOW)
    assert card.expiry == datetime(2028, 1, 1, tzinfo=UTC)  # valid through 2027-12-31 UTC
    text = cards_to_csv([card])
    assert text.splitlines()[1].split(",")[5] == "2027-12-31"
    for _ in range(3):
        (card,) = parse_cards_csv(text, now=NOW)
        text = cards_to_csv([card])
    assert card.expiry == datetime(2028, 1, 1, tzinfo=UTC)
    assert format_expiry(datetime(2028, 1, 1, 12, 30, tzinfo=UTC)) == "2028-01-01T12:30:00Z"


def test_csv_semicolons_bom_and_aliases() -> None:
    text = "\ufeffUID;Owner;Chargers\nE43AC9D2;Alice;CP1,CP2\n\n04A1B2C3D4E5F6;Bob;\n"
    cards = parse_cards_csv(text, now=NOW)
    assert [c.owner for c in cards] == ["Alice", "Bob"]
    assert cards[0].chargers == frozenset({"CP1", "CP2"})
    assert cards[1].id == uid("04A1B2C3D4E5F6") and cards[1].chargers is None


def test_csv_errors_name_every_bad_line() -> None:
    text = (
        "id,owner,status,expiry\n"  # line 1
        "E43AC9D2,Alice,Accepted,\n"  # 2: fine
        "08AABBCC,Rand,,\n"  # 3: random UID
        "E43AC9D,Nibble,,\n"  # 4: odd digit count
        "E43AC9D2,Again,,\n"  # 5: duplicate of line 2
        "11223344,Bad status,Lost,\n"  # 6
        "55667788,Bad expiry,,next week\n"  # 7
        '"99AABBCC,Quoted\nnewline",x,,\n'  # 8-9: one row over two lines, bad id
        "AABBCCDD,Short\n"  # 10: too few fields
        ",No id,,\n"  # 11
    )
    with pytest.raises(CsvImportError) as caught:
        parse_cards_csv(text, now=NOW)
    lines = dict(caught.value.errors)
    assert sorted(lines) == [3, 4, 5, 6, 7, 8, 10, 11]
    assert "random UID" in lines[3]
    assert "odd number" in lines[4]
    assert "line 2" in lines[5]
    assert "'Lost'" in lines[6]
    assert "expiry" in lines[7]
    assert "2 fields" in lines[10]
    assert "empty" in lines[11]
    assert "nothing imported" in str(caught.value)


def test_csv_header_errors() -> None:
    with pytest.raises(CsvImportError, match="no 'id' column"):
        parse_cards_csv("owner,label\nA,B\n", now=NOW)
    with pytest.raises(CsvImportError, match="unknown column"):
        parse_cards_csv("id,colour\nE43AC9D2,red\n", now=NOW)
    with pytest.raises(CsvImportError, match="empty file"):
        parse_cards_csv("", now=NOW)


# --------------------------------------------------------------------------------------------
# Cloud list: examples


def test_full_replaces_and_empty_full_clears() -> None:
    mirror = CloudList()
    assert mirror.version == 0
    assert applied(mirror, send(3, "Full", entry("AA11BB22"), entry("Mobile1", "Blocked"))) == (
        "Accepted"
    )
    assert mirror.version == 3
    assert contents(mirror) == {
        "AA11BB22": ("AA11BB22", "Accepted"),
        "MOBILE1": ("Mobile1", "Blocked"),
    }
    assert applied(mirror, send(2, "Full", entry("CC33DD44"))) == "Accepted"  # any version
    assert contents(mirror) == {"CC33DD44": ("CC33DD44", "Accepted")}
    assert applied(mirror, {"listVersion": 4, "updateType": "Full"}) == "Accepted"
    assert (len(mirror), mirror.version) == (0, 4)


def test_differential_adds_updates_deletes() -> None:
    mirror = CloudList()
    applied(mirror, send(1, "Full", entry("AA11BB22"), entry("CC33DD44")))
    update = mirror.plan(
        send(2, "Differential", entry("aa11bb22", "Blocked"), entry("CC33DD44", None))
    )
    assert update.status == "Accepted" and update.changed
    mirror.commit(update)
    assert contents(mirror) == {"AA11BB22": ("aa11bb22", "Blocked")}
    assert mirror.version == 2
    # empty differential: no entries change, the version moves on
    assert applied(mirror, send(5, "Differential")) == "Accepted"
    assert mirror.version == 5 and len(mirror) == 1


def test_version_mismatch_and_repeat_of_the_same_update() -> None:
    mirror = CloudList()
    applied(mirror, send(4, "Full", entry("AA11BB22")))
    stale = mirror.plan(send(3, "Differential", entry("CC33DD44")))
    assert stale.status == "VersionMismatch" and "not above the current 4" in stale.reason
    assert mirror.plan(send(4, "Differential", entry("CC33DD44"))).status == "VersionMismatch"
    assert applied(mirror, send(5, "Differential", entry("CC33DD44"))) == "Accepted"
    # the cloud sends the same differential to the next charger: already in effect
    repeat = mirror.plan(send(5, "Differential", entry("CC33DD44")))
    assert (repeat.status, repeat.changed) == ("Accepted", False)


def test_failed_requests_change_nothing() -> None:
    mirror = CloudList()
    applied(mirror, send(1, "Full", entry("AA11BB22")))
    for payload, why in [
        (send(2, "Full", entry("CC33DD44", None)), "needs idTagInfo"),
        (send(2, "Differential", entry("CC33DD44"), entry("cc33dd44")), "twice"),
        (send(2, "Differential", entry("X" * 21)), "20"),
        (send(2, "Differential", entry("CC33DD44", "Maybe")), "Maybe"),
        (send(2, "Differential", entry("CC33DD44", expiryDate="soon")), "ISO 8601"),
        ({"listVersion": -1, "updateType": "Full"}, "negative"),
        ({"listVersion": "2", "updateType": "Full"}, "integer"),
        ({"listVersion": 2, "updateType": "Partial"}, "Full or Differential"),
    ]:
        update = mirror.plan(payload)
        assert update.status == "Failed", payload
        assert why in update.reason
        mirror.commit(update)
    assert contents(mirror) == {"AA11BB22": ("AA11BB22", "Accepted")} and mirror.version == 1


def test_random_uids_are_skipped_not_fatal() -> None:
    mirror = CloudList()
    update = mirror.plan(send(1, "Full", entry("08AABBCC"), entry("AA11BB22")))
    assert update.status == "Accepted" and update.skipped == ("08AABBCC",)
    mirror.commit(update)
    assert list(contents(mirror)) == ["AA11BB22"]


def test_entry_info_round_trip() -> None:
    info = IdTagInfo.from_ocpp(
        {"status": "Accepted", "expiryDate": "2026-01-01T00:00:00.500Z", "parentIdTag": "P1"}
    )
    assert info.to_ocpp() == {
        "status": "Accepted",
        "expiryDate": "2026-01-01T00:00:00.500Z",
        "parentIdTag": "P1",
    }
    assert info.expired(datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC).timestamp())
    assert not info.expired(datetime(2025, 12, 31, tzinfo=UTC).timestamp())


# --------------------------------------------------------------------------------------------
# Cloud list: properties against a model
#
# The model is the spec text written as plainly as possible: a dict from the upper-cased idTag
# to (idTag, status) and a version.

TAGS = ["AA11BB22", "aa11bb22", "CC33DD44", "Mobile1", "MOBILE1", "Tok-3", "08AABBCC"]
RANDOM = {"08AABBCC"}
STATUSES = ["Accepted", "Blocked", "Expired", "Invalid"]

Model = tuple[dict[str, tuple[str, str]], int]


def model_apply(model: Model, payload: dict[str, Any]) -> tuple[str, Model]:
    state, version = model
    items = payload["localAuthorizationList"]
    if len({i["idTag"].upper() for i in items}) != len(items):
        return "Failed", model
    kept = [i for i in items if i["idTag"] not in RANDOM]
    if payload["updateType"] == "Full":
        if any("idTagInfo" not in i for i in items):
            return "Failed", model
        new = {i["idTag"].upper(): (i["idTag"], i["idTagInfo"]["status"]) for i in kept}
        return "Accepted", (new, payload["listVersion"])
    new = dict(state)
    for item in kept:
        if "idTagInfo" in item:
            new[item["idTag"].upper()] = (item["idTag"], item["idTagInfo"]["status"])
        else:
            new.pop(item["idTag"].upper(), None)
    target = payload["listVersion"]
    if target < version or (target == version and new != state):
        return "VersionMismatch", model
    return "Accepted", (new, target)


items_strategy = st.lists(
    st.tuples(st.sampled_from(TAGS), st.one_of(st.none(), st.sampled_from(STATUSES))),
    max_size=5,
)


@st.composite
def requests(draw: st.DrawFn) -> list[tuple[str, int, list[tuple[str, str | None]]]]:
    out = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["Full", "Differential"]))
        version = draw(st.integers(0, 6))
        out.append((kind, version, draw(items_strategy)))
    return out


@settings(max_examples=300, deadline=None)
@given(requests())
def test_mirror_follows_the_spec_model(
    steps: list[tuple[str, int, list[tuple[str, str | None]]]],
) -> None:
    mirror = CloudList()
    model: Model = ({}, 0)
    for kind, version, items in steps:
        payload = send(version, kind, *(entry(tag, status) for tag, status in items))
        expected, model = model_apply(model, payload)
        update = mirror.plan(payload)
        assert update.status == expected, (payload, update.reason)
        mirror.commit(update)
        assert contents(mirror) == model[0]
        assert mirror.version == model[1]
