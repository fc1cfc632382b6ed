"""Charger groups, card groups and shares (edgegw.auth.access): pure rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgegw.auth.access import Access, AccessError, CardGroup, Share, parse_until

NOW = datetime(2026, 10, 23, 12, 0, tzinfo=UTC).timestamp()  # a Friday
BRUSSELS = ZoneInfo("Europe/Brussels")
ALICE, BOB, GUEST = "E43AC9D2", "04A1B2C3D4E5F6", "0A0B0C0D"


def site() -> Access:
    return (
        Access()
        .with_charger_group("garage", frozenset({"CP1", "CP2"}))
        .with_charger_group("visitors", frozenset({"CP9"}))
        .with_card_group(CardGroup("residents", frozenset({ALICE, BOB}), frozenset({"@garage"})))
        .with_card_group(CardGroup("staff", frozenset({BOB}), None))
    )


def test_a_card_without_chargers_goes_where_its_groups_allow() -> None:
    access = site()
    assert access.verdict(ALICE, None, "CP2", NOW).allowed
    refused = access.verdict(ALICE, None, "CP9", NOW)
    assert not refused.allowed and "residents" in refused.reason and "CP9" in refused.reason
    # Bob is also staff, a group without a limit: everywhere.
    assert access.verdict(BOB, None, "CP9", NOW).allowed
    # A card in no group, without chargers: everywhere.
    assert access.verdict(GUEST, None, "CP9", NOW).allowed


def test_a_cards_own_chargers_win_over_its_groups_and_groups_are_read_when_asked() -> None:
    access = site()
    assert not access.verdict(ALICE, frozenset({"CP9"}), "CP1", NOW).allowed
    assert access.verdict(ALICE, frozenset({"@visitors"}), "CP9", NOW).allowed
    # A charger added to a group is at once allowed for the group's cards.
    grown = access.with_charger_group("garage", frozenset({"CP1", "CP2", "CP3"}))
    assert grown.verdict(ALICE, None, "CP3", NOW).allowed


def test_a_share_allows_until_it_ends_then_the_card_is_told_expired() -> None:
    share = Share(1, frozenset({"@visitors"}), NOW + 3600, card=GUEST, note="weekend")
    access = site().with_share(share)
    allowed = access.verdict(GUEST, frozenset({"CP1"}), "CP9", NOW)
    assert allowed.allowed and allowed.until == NOW + 3600
    ended = access.verdict(GUEST, frozenset({"CP1"}), "CP9", NOW + 3600)
    assert not ended.allowed and ended.share_ended and "ended" in ended.reason
    # A group share reaches every card of the group.
    group_share = Share(2, frozenset({"CP9"}), NOW + 60, group="residents")
    assert site().with_share(group_share).verdict(ALICE, None, "CP9", NOW).allowed


def test_places_give_standing_chargers_and_shared_ones_with_their_end() -> None:
    share = Share(1, frozenset({"CP9", "CP1"}), NOW + 60, card=ALICE)
    standing, shared = site().with_share(share).places(ALICE, None, NOW)
    assert standing == frozenset({"CP1", "CP2"}) and shared == {"CP9": NOW + 60}
    assert site().with_share(share).places(ALICE, None, NOW + 60)[1] == {}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda a: a.with_charger_group("garage level 1", frozenset({"CP1"})), "must be 1 to 40"),
        (lambda a: a.with_charger_group("nothing", frozenset()), "no charger group"),
        (lambda a: a.with_card_group(CardGroup("x", chargers=frozenset({"@nope"}))), "'nope'"),
        (lambda a: a.with_share(Share(1, frozenset({"CP1"}), NOW, group="nope")), "no card group"),
        (lambda a: a.with_share(Share(1, frozenset(), NOW, card=ALICE)), "names the chargers"),
        (lambda a: a.without_share(7), "no share 7"),
    ],
)
def test_bad_changes_say_why(change: object, words: str) -> None:
    with pytest.raises(AccessError, match=words):
        change(site())  # type: ignore[operator]


def test_removing_a_card_takes_it_out_of_groups_and_shares() -> None:
    access = site().with_share(Share(1, frozenset({"CP9"}), NOW + 60, card=ALICE))
    left = access.without_card(ALICE)
    assert ALICE not in left.card_groups["residents"].members and left.shares == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Sunday 25 October 2026: summer time ends at 03:00, so 18:00 is UTC+1.
        ("sunday 18:00", datetime(2026, 10, 25, 17, 0, tzinfo=UTC)),
        ("Friday 15:30", datetime(2026, 10, 23, 13, 30, tzinfo=UTC)),  # later today (UTC+2)
        ("friday 9:00", datetime(2026, 10, 30, 8, 0, tzinfo=UTC)),  # passed today: next week
        ("2026-10-24 18:00", datetime(2026, 10, 24, 16, 0, tzinfo=UTC)),
        ("2026-10-24", datetime(2026, 10, 24, 22, 0, tzinfo=UTC)),  # through that day
        ("2026-10-24T18:00:00Z", datetime(2026, 10, 24, 18, 0, tzinfo=UTC)),
    ],
)
def test_until_reads_as_the_site_writes_it(text: str, expected: datetime) -> None:
    assert parse_until(text, NOW, BRUSSELS) == expected.timestamp()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("2026-10-22 18:00", "already past"),
        ("sunday", "weekday and a time"),
        ("sunday 25:00", "18:00"),
        ("next week", "is not a date and time"),
    ],
)
def test_bad_until_says_why(text: str, words: str) -> None:
    with pytest.raises(AccessError, match=words):
        parse_until(text, NOW, BRUSSELS)


names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
chargers = st.frozensets(st.sampled_from(["CP1", "CP2", "CP3", "@g"]), min_size=1)


@given(
    members=st.frozensets(st.sampled_from([ALICE, BOB, GUEST])),
    group_chargers=st.none() | chargers,
    share_chargers=chargers,
    until=st.floats(NOW - 1e5, NOW + 1e5),
    name=names,
)
def test_json_round_trip(
    members: frozenset[str],
    group_chargers: frozenset[str] | None,
    share_chargers: frozenset[str],
    until: float,
    name: str,
) -> None:
    access = (
        Access()
        .with_charger_group("g", frozenset({"CP4"}))
        .with_card_group(CardGroup(name, members, group_chargers))
        .with_share(Share(1, share_chargers, until, group=name, note="n"))
    )
    again = Access.from_json(access.to_json())
    assert again == access
    for key in (ALICE, BOB, GUEST):
        for charger in ("CP1", "CP4", "CP9"):
            assert again.verdict(key, None, charger, NOW) == access.verdict(key, None, charger, NOW)
