"""Card identity: canonical form, charger formats, cleanup of reader quirks, and matching.

Real-world forms come from the reference notes (spec-facts section 4, field-lessons R1-R8).
"""

from __future__ import annotations

import random
from functools import reduce
from operator import xor

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edgegw.auth.idtags import (
    FORMATS,
    AmbiguousCardIdError,
    CardId,
    CardIdError,
    CardIndex,
    IdTagFormat,
    LostNibbleError,
    PartialUidError,
    RandomUidError,
    UnrepresentableError,
    interpretations,
    is_lossless,
    parse_card_id,
    render,
    variants,
)

F = IdTagFormat


def bcc(data: bytes) -> int:
    return reduce(xor, data, 0)


def uid(text: str) -> CardId:
    return CardId.from_uid(bytes.fromhex(text))


# ---------------------------------------------------------------------------------------------
# Strategies: UIDs as real cards have them. A 4-byte UID never starts with 88 (cascade tag) and
# is not random (08); a 7/10-byte UID starts with a manufacturer code and does not end in the
# zeros that would make it look like a padded shorter UID.


def _uid_bytes(size: int) -> st.SearchStrategy[bytes]:
    if size == 4:
        return st.binary(min_size=4, max_size=4).filter(
            lambda b: b[0] not in (0x88, 0x08) and any(b)
        )
    body = size - 4
    return st.tuples(
        st.integers(0x01, 0x87),
        st.binary(min_size=3, max_size=3),
        st.binary(min_size=body, max_size=body).filter(lambda b: any(b[-3:])),
    ).map(lambda t: bytes([t[0]]) + t[1] + t[2])


def cards_of(*sizes: int) -> st.SearchStrategy[CardId]:
    return st.sampled_from(sizes).flatmap(_uid_bytes).map(CardId.from_uid)


uid_cards = cards_of(4, 7, 10)
concrete_formats = st.sampled_from(FORMATS)


# ---------------------------------------------------------------------------------------------
# Round trips (properties)


@pytest.mark.parametrize("fmt", FORMATS)
# Short formats (hex_6) skip most cards with assume(): that is the property, not a slow strategy.
@settings(suppress_health_check=[HealthCheck.filter_too_much])
@given(card=uid_cards)
def test_parse_recovers_the_card_from_every_lossless_rendering(
    fmt: IdTagFormat, card: CardId
) -> None:
    assume(is_lossless(card, fmt))
    assert parse_card_id(render(card, fmt), fmt) == card


@pytest.mark.parametrize(
    ("fmt", "sizes"),
    [
        (F.HEX, (4, 7, 10)),
        (F.HEX_LOWER, (4, 7, 10)),
        (F.HEX_REVERSED, (4, 7, 10)),
        (F.DEC_LE, (4, 7)),
        (F.DEC_BE, (4, 7)),
        (F.HEX_7, (4, 7)),
        (F.HEX_6, (4,)),
        (F.HEX_4, (4,)),
        (F.HEX_CL1, (4,)),
    ],
)
def test_lossless_table(fmt: IdTagFormat, sizes: tuple[int, ...]) -> None:
    for size, example in ((4, "E43AC9D2"), (7, "04A3C6B2112233"), (10, "04A3C6B21122334455AA")):
        assert is_lossless(uid(example), fmt) is (size in sizes)


@given(card=uid_cards)
def test_canonical_form_parses_back_under_auto(card: CardId) -> None:
    assert card.canonical == card.uid.hex().upper()  # type: ignore[union-attr]
    assert parse_card_id(card.canonical) == card


@given(card=uid_cards, fmt=concrete_formats)
def test_renderings_are_valid_idtags_or_refused_cleanly(card: CardId, fmt: IdTagFormat) -> None:
    assert card.uid is not None
    if fmt in (F.DEC_LE, F.DEC_BE) and len(card.uid) == 10:
        with pytest.raises(UnrepresentableError, match="more than 20"):
            render(card, fmt)
        assert fmt not in variants(card)
        return
    text = render(card, fmt)
    assert 1 <= len(text) <= 20
    assert all(" " <= c <= "~" for c in text)
    assert variants(card)[fmt] == text


@given(card=uid_cards)
def test_reversed_of_reversed_is_the_card(card: CardId) -> None:
    assert card.uid is not None
    assume(card.uid[-1] != 0x88)  # the reversed bytes must themselves be a valid UID
    mirrored = parse_card_id(render(card, F.HEX_REVERSED), F.HEX, allow_random=True)
    assert mirrored.uid == card.uid[::-1]
    assert render(mirrored, F.HEX_REVERSED) == card.canonical
    assert parse_card_id(render(mirrored, F.HEX_REVERSED)) == card


@given(card=cards_of(4, 7), fmt=st.sampled_from([F.DEC_LE, F.DEC_BE]), zeros=st.integers(0, 6))
def test_decimal_round_trips_with_or_without_leading_zeros(
    card: CardId, fmt: IdTagFormat, zeros: int
) -> None:
    text = "0" * zeros + render(card, fmt)
    assume(len(text) <= 20)
    assert parse_card_id(text, fmt) == card


@given(
    card=uid_cards,
    sep=st.sampled_from([":", "-", " ", " : "]),
    data=st.data(),
)
def test_any_case_and_separators_parse_to_the_same_card(
    card: CardId, sep: str, data: st.DataObject
) -> None:
    assert card.uid is not None
    groups = []
    for byte in card.uid:
        group = f"{byte:02x}" if data.draw(st.booleans(), "lower") else f"{byte:02X}"
        if byte < 0x10 and data.draw(st.booleans(), "drop leading zero"):
            group = group[1]  # separators show where the byte ends, so this is repairable
        groups.append(group)
    assert parse_card_id(sep.join(groups)) == card
    assert parse_card_id("".join(f"{b:02x}" for b in card.uid)) == card


@given(card=cards_of(4, 7, 10))
def test_unpadded_bytes_round_trip_only_without_small_bytes(card: CardId) -> None:
    assert card.uid is not None
    text = render(card, F.HEX_NOPAD)
    if all(b >= 0x10 for b in card.uid):
        assert text == card.canonical
        assert parse_card_id(text, F.HEX_NOPAD) == card
    else:
        assert is_lossless(card, F.HEX_NOPAD) is False
        assert len(text) < len(card.canonical)


# ---------------------------------------------------------------------------------------------
# The variants table from spec-facts §4.3 (UID E4 3A C9 D2)


def test_variants_of_the_reference_card() -> None:
    card = parse_card_id("E4 3A C9 D2")
    assert variants(card) == {
        F.HEX: "E43AC9D2",
        F.HEX_LOWER: "e43ac9d2",
        F.HEX_REVERSED: "D2C93AE4",
        F.DEC_LE: "3536403172",
        F.DEC_BE: "3829058002",
        F.HEX_7: "E43AC9D2000000",
        F.HEX_6: "E43AC9D20000",
        F.HEX_4: "E43AC9D2",
        F.HEX_CL1: "E43AC9D2C5",  # C5 = E4 ^ 3A ^ C9 ^ D2
        F.HEX_NOPAD: "E43AC9D2",
    }
    assert render(card, F.AUTO) == "E43AC9D2"  # unknown charger: the OCPP recommendation


def test_seven_byte_card_variants_show_truncation_and_cascade_frame() -> None:
    card = uid("04A3C6B2112233")
    assert render(card, F.HEX_4) == "04A3C6B2"
    assert render(card, F.HEX_6) == "04A3C6B21122"
    assert render(card, F.HEX_7) == "04A3C6B2112233"
    assert render(card, F.HEX_CL1) == f"8804A3C6{bcc(bytes.fromhex('8804A3C6')):02X}"
    assert render(card, F.DEC_BE) == str(0x04A3C6B2112233)
    assert len(render(card, F.DEC_LE)) == 17
    assert not is_lossless(card, F.HEX_4)
    assert is_lossless(card, F.HEX_7)


# ---------------------------------------------------------------------------------------------
# Installer input: cleanup of real-world forms


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("7186A61E", "7186A61E"),
        ("7186a61e", "7186A61E"),
        ("  71:86:a6:1e ", "7186A61E"),
        ("71-86-A6-1E", "7186A61E"),
        ("0x7186A61E", "7186A61E"),
        ("A4:B2:63:5", "A4B26305"),  # one-digit byte between separators: zero restored
        ("DD17380AF8", "DD17380A"),  # 4-byte UID + BCC (MFRC522 driver bug)
        ("E43AC9D2000000", "E43AC9D2"),  # 4-byte UID padded to 7 bytes
        ("E43AC9D20000", "E43AC9D2"),  # 4-byte UID padded to 6 bytes (SmartEVSE)
        ("04A3C6B2112233", "04A3C6B2112233"),
        ("04A3C6B211223344556677", None),  # 11 bytes: refused below
        ("0451AAC3790000", "0451AAC3790000"),  # 7-byte UID ending in 00 00 stays 7 bytes
        ("04A3C6B2112233000000", "04A3C6B2112233"),  # 7-byte UID padded to 10 bytes
        ("12345678", "12345678"),  # a bare 8-digit number is hex, as OCPP recommends
        ("04A3C6B21122334455AA", "04A3C6B21122334455AA"),  # 10-byte UID: exactly 20 chars
    ],
)
def test_installer_input_is_cleaned_up(text: str, canonical: str | None) -> None:
    if canonical is None:
        with pytest.raises(CardIdError, match="11 bytes"):
            parse_card_id(text)
        return
    card = parse_card_id(text)
    assert card.is_uid
    assert card.canonical == canonical


def test_cascade_tag_and_bcc_are_stripped_from_full_anticollision_frames() -> None:
    cl1 = bytes.fromhex("8804A3C6")
    cl2 = bytes.fromhex("11223344")
    with_bcc = cl1 + bytes([bcc(cl1)]) + cl2 + bytes([bcc(cl2)])
    expected = uid("04A3C611223344")
    assert parse_card_id(with_bcc.hex(" ").upper()) == expected  # "88 04 A3 C6 .. .."
    assert parse_card_id("8804A3C611223344") == expected  # stray cascade tag, no BCC

    # triple size: 88 u0 u1 u2 [bcc] 88 u3 u4 u5 [bcc] u6 u7 u8 u9 [bcc]
    frames = [bytes.fromhex(f) for f in ("88045566", "88778899", "AABBCCDD")]
    ten = uid("04556677 8899AABBCCDD".replace(" ", ""))
    assert parse_card_id(b"".join(frames).hex()) == ten
    assert parse_card_id(b"".join(f + bytes([bcc(f)]) for f in frames).hex(":")) == ten


def test_first_cascade_level_only_is_refused_as_partial() -> None:
    # 880451AA77: what react-native-nfc-manager #668 returned for a 0451AA... card
    with pytest.raises(PartialUidError, match="starts 0451AA") as err:
        parse_card_id("880451AA77")
    assert err.value.prefix == bytes.fromhex("0451AA")


def test_cascade_tag_with_wrong_bcc_is_refused() -> None:
    with pytest.raises(CardIdError, match="cascade tag"):
        parse_card_id("88 04 A3 C6 00 11 22 33 44 00")


def test_six_bytes_without_padding_is_a_truncated_uid() -> None:
    with pytest.raises(PartialUidError, match="6 bytes"):
        parse_card_id("04A3C6B21122")


def test_three_byte_numbers_do_not_identify_a_card() -> None:
    with pytest.raises(CardIdError, match="Wiegand"):
        parse_card_id("A1B2C3")


def test_lost_nibble_is_flagged_with_candidates() -> None:
    # A4 B2 63 05 printed naively as A4B2635 (field-lessons R6)
    with pytest.raises(LostNibbleError, match="odd number") as err:
        parse_card_id("A4B2635")
    candidates = {c.canonical for c in err.value.candidates}
    assert candidates == {"0A4B2635", "A40B2635", "A4B20635", "A4B26305"}
    assert render(uid("A4B26305"), F.HEX_NOPAD) == "A4B2635"
    with pytest.raises(LostNibbleError):
        parse_card_id("A4B2635", F.HEX_NOPAD)


def test_all_zero_uid_is_a_reader_error() -> None:
    with pytest.raises(CardIdError, match="no UID"):
        parse_card_id("00000000")
    with pytest.raises(CardIdError, match="no UID"):
        parse_card_id("0", F.DEC_LE)


# ---------------------------------------------------------------------------------------------
# Decimal printed numbers


def test_printed_decimal_needs_its_format_and_reads_both_endiannesses() -> None:
    assert parse_card_id("3536403172", F.DEC_LE) == uid("E43AC9D2")
    assert parse_card_id("3829058002", F.DEC_BE) == uid("E43AC9D2")
    # Lost leading zeros: 12345678 = 0x00BC614E, printed as "0012345678" or "12345678"
    assert parse_card_id("0012345678", F.DEC_BE) == uid("00BC614E")
    assert parse_card_id("12345678", F.DEC_LE) == uid("4E61BC00")


def test_bare_number_under_auto_is_ambiguous_and_lists_readings() -> None:
    with pytest.raises(AmbiguousCardIdError, match="dec_le") as err:
        parse_card_id("3536403172")
    assert err.value.candidates[F.DEC_LE] == uid("E43AC9D2")
    assert err.value.candidates[F.DEC_BE] == uid("D2C93AE4")
    # the same digits happen to be a valid 4-byte UID + BCC, which is why AUTO refuses to guess
    assert err.value.candidates[F.HEX] == uid("35364031")
    assert interpretations("3536403172") == err.value.candidates


def test_seven_byte_decimal_and_oversized_numbers() -> None:
    card = uid("04A3C6B2112233")
    assert parse_card_id(render(card, F.DEC_LE), F.DEC_LE) == card
    with pytest.raises(CardIdError, match="larger than any 7-byte UID"):
        parse_card_id("99999999999999999999", F.DEC_LE)
    with pytest.raises(UnrepresentableError):
        render(uid("04A3C6B21122334455AA"), F.DEC_BE)


# ---------------------------------------------------------------------------------------------
# Random UIDs


def test_random_uid_is_refused_for_authorisation() -> None:
    with pytest.raises(RandomUidError, match="random UID"):
        parse_card_id("08123456")
    with pytest.raises(RandomUidError):
        parse_card_id("56341208", F.HEX_REVERSED)
    card = parse_card_id("08:12:34:56", allow_random=True)
    assert card.is_random_uid
    with pytest.raises(RandomUidError):
        CardIndex([card])
    assert not uid("08123456789ABC").is_random_uid  # 0x08 as a 7-byte manufacturer code


def test_lookup_flags_an_unknown_random_uid() -> None:
    index = CardIndex([uid("E43AC9D2")])
    result = index.lookup("08A1B2C3")
    assert not result.found
    assert result.random_uid
    assert "random UID" in result.describe()
    assert not index.lookup("E43AC9D3").random_uid


# ---------------------------------------------------------------------------------------------
# Tokens and idTag limits


@pytest.mark.parametrize("text", ["Mobile000001", "DE*8EO*Aet5e4*3", "app:user-42", "Virtual 1"])
def test_tokens_are_kept_verbatim_and_compared_case_insensitively(text: str) -> None:
    card = parse_card_id(text)
    assert card.is_token
    assert card.canonical == text
    assert card == parse_card_id(text.upper()) == parse_card_id(text.lower())
    assert hash(card) == hash(CardId.from_token(text.swapcase()))
    assert set(variants(card).values()) == {text}
    assert render(card, F.DEC_LE) == text


def test_token_never_equals_a_uid_with_the_same_text() -> None:
    assert CardId.from_token("E43AC9D2") != uid("E43AC9D2")


def test_hex_looking_token_must_be_added_explicitly() -> None:
    with pytest.raises(PartialUidError, match="6 bytes"):
        parse_card_id("DEADBEEFCAFE")
    token = CardId.from_token("DEADBEEFCAFE")
    assert CardIndex([token]).lookup("deadbeefcafe").card == token


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("Mobile0000000000000001", "at most 20"),  # 22 chars
        ("Mobile\x0001", "not printable ASCII"),
        ("Müller", "not printable ASCII"),
        ("ab\tc", "position 2"),
    ],
)
def test_garbage_is_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(CardIdError, match=message) as err:
        parse_card_id(text)
    assert isinstance(err.value, ValueError)


def test_long_input_is_fine_when_it_is_a_separated_uid() -> None:
    text = "04:A3:C6:B2:11:22:33:44:55:AA"  # 29 chars, but a 10-byte UID
    assert parse_card_id(text).canonical == "04A3C6B21122334455AA"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"uid": b"\x04\x01", "token": "x"}, "exactly one"),
        ({"uid": bytes.fromhex("E43AC9D2C5")}, "4, 7 or 10 bytes"),
        ({"uid": bytes.fromhex("8804A3C6")}, "cascade tag"),
        ({"token": "x" * 21}, "at most 20"),
        ({"token": " padded"}, "space"),
        ({"token": ""}, "empty"),
    ],
)
def test_cardid_validates_its_fields(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CardIdError, match=message):
        CardId(**kwargs)  # type: ignore[arg-type]


def test_from_idtag_reads_ocpp_idtags_literally() -> None:
    assert CardId.from_idtag("e43ac9d2") == uid("E43AC9D2")
    assert CardId.from_idtag("04A3C6B2112233").is_uid
    # no cleanup or guessing for tags the cloud sent: these stay tokens
    for text in ("880451AA77", "3536403172", "A4B2635", "Mobile000001", "8804A3C6"):
        assert CardId.from_idtag(text).is_token
    assert CardId.from_idtag("08123456").is_random_uid
    with pytest.raises(CardIdError):
        CardId.from_idtag("x" * 21)


def test_repr_and_str() -> None:
    assert repr(uid("E43AC9D2")) == "CardId('E43AC9D2')"
    assert repr(CardId.from_token("Mobile1")) == "CardId(token='Mobile1')"
    assert str(uid("e43ac9d2")) == "E43AC9D2"


# ---------------------------------------------------------------------------------------------
# CardIndex


def test_reversed_hex_is_recognised_and_reported() -> None:
    # field-lessons R1: one card seen as 7186A61E and as 1EA68671
    card = uid("7186A61E")
    index = CardIndex([card])
    result = index.lookup("1EA68671")
    assert result.card == card
    assert result.fmt is F.HEX_REVERSED
    assert not result.ambiguous
    assert index.lookup("1EA68671", F.HEX_REVERSED).card == card
    assert not index.lookup("1EA68671", F.HEX).found


def test_auto_prefers_the_canonical_card_and_exposes_the_other() -> None:
    a, b = uid("7186A61E"), uid("1EA68671")
    index = CardIndex([a, b])
    result = index.lookup("1EA68671")
    assert result.card == b
    assert result.fmt is F.HEX
    assert result.ambiguous
    assert [(m.card, m.fmt) for m in result.matches] == [(b, F.HEX), (a, F.HEX_REVERSED)]
    assert "ambiguous, also 7186A61E (as hex_reversed)" in result.describe()


def test_fixed_format_does_not_guess_between_its_reading_and_an_echoed_canonical() -> None:
    # On a reversed-hex charger "1EA68671" is card a tapped, or card b echoed from a RemoteStart.
    a, b = uid("7186A61E"), uid("1EA68671")
    result = CardIndex([a, b]).lookup("1EA68671", F.HEX_REVERSED)
    assert result.card is None
    assert result.ambiguous
    assert set(result.cards) == {a, b}
    assert "unresolved" in result.describe()


def test_fixed_format_still_accepts_the_canonical_form() -> None:
    card = uid("E43AC9D2")
    index = CardIndex([card])
    result = index.lookup("E43AC9D2", F.DEC_LE)
    assert (result.card, result.fmt) == (card, F.HEX)
    assert index.lookup("3536403172", F.DEC_LE).fmt is F.DEC_LE


def test_auto_never_guesses_between_two_non_canonical_readings() -> None:
    a = uid("78563412")  # reversed hex: 12345678
    b = parse_card_id("12345678", F.DEC_BE)  # decimal: 12345678
    result = CardIndex([a, b]).lookup("12345678")
    assert result.card is None
    assert result.ambiguous
    assert {(m.card, m.fmt) for m in result.matches} == {(a, F.HEX_REVERSED), (b, F.DEC_BE)}


def test_auto_prefers_a_lossless_reading_to_a_truncated_one() -> None:
    four = uid("B2C6A304")  # reversed: 04A3C6B2
    seven = uid("04A3C6B2112233")  # first 4 bytes: 04A3C6B2
    result = CardIndex([four, seven]).lookup("04A3C6B2")
    assert (result.card, result.fmt) == (four, F.HEX_REVERSED)
    assert result.ambiguous
    assert result.matches[1].card == seven
    assert result.matches[1].lossless is False


def test_truncating_charger_cannot_tell_cards_with_the_same_prefix_apart() -> None:
    a, b = uid("04A3C6B2112233"), uid("04A3C6B2445566")
    index = CardIndex([a, b])
    result = index.lookup("04A3C6B2", F.HEX_4)
    assert result.card is None
    assert set(result.cards) == {a, b}
    cl1 = render(a, F.HEX_CL1)  # same first three bytes, so the same cascade frame
    assert index.clashes(a) == {"04A3C6B2": (b,), cl1: (b,)}
    assert index.lookup("04a3c6b2445566", F.HEX_4).card == b  # canonical echo


def test_partial_forms_match_the_enrolled_card() -> None:
    card = uid("0451AAC3790000")
    index = CardIndex([card])
    cl1 = index.lookup("880451AA77")  # react-native-nfc-manager #668
    assert (cl1.card, cl1.fmt) == (card, F.HEX_CL1)
    assert cl1.matches[0].lossless is False
    assert index.lookup("0451AAC37900", F.HEX_6).card == card

    four = uid("E43AC9D2")
    index.add(four)
    assert index.lookup("E43AC9D2000000").fmt is F.HEX_7
    assert index.lookup("E43AC9D20000").fmt is F.HEX_6
    assert index.lookup("e43ac9d2c5").fmt is F.HEX_CL1


def test_lookup_tolerates_case_separators_and_decimal_leading_zeros() -> None:
    card = uid("4E61BC00")  # DEC_LE: 12345678
    index = CardIndex([card])
    lower = index.lookup("4e61bc00")
    assert (lower.card, lower.fmt) == (card, F.HEX_LOWER)
    assert index.lookup("4E:61:BC:00").fmt is F.HEX
    assert index.lookup("4e-61-bc-0", F.HEX).card == card
    padded = index.lookup("0012345678", F.DEC_LE)
    assert (padded.card, padded.fmt) == (card, F.DEC_LE)
    assert index.lookup("0012345678").card == card
    assert index.lookup(" 4E61BC00 ").card == card


def test_lost_nibble_charger_is_matched_through_its_format() -> None:
    card = uid("A4B26305")
    result = CardIndex([card]).lookup("A4B2635")
    assert (result.card, result.fmt) == (card, F.HEX_NOPAD)


def test_tokens_match_verbatim_in_any_format() -> None:
    token = CardId.from_token("Mobile000001")
    index = CardIndex([token, uid("E43AC9D2")])
    for fmt in (F.AUTO, F.HEX, F.DEC_LE, F.HEX_REVERSED):
        result = index.lookup("MOBILE000001", fmt)
        assert result.card == token
        assert result.fmt is None
        assert "verbatim" in result.describe()


def test_odd_input_does_not_match_and_does_not_raise() -> None:
    index = CardIndex([uid("E43AC9D2"), CardId.from_token("Mobile1")])
    for text in ("", " ", "x" * 40, "\x00\x01", "Müller", "E43AC9D", "::"):
        result = index.lookup(text)
        assert not result.found
        assert result.matches == ()


def test_add_discard_and_membership() -> None:
    a, b = uid("04A3C6B2112233"), uid("04A3C6B2445566")
    index = CardIndex([a])
    assert index.add(b) is True
    assert index.add(uid("04a3c6b2445566")) is False
    assert len(index) == 2
    assert set(index) == {a, b}
    assert index.discard(b) is True
    assert index.discard(b) is False
    assert b not in index
    assert index.lookup("04A3C6B2", F.HEX_4).card == a  # the shared key is a single card again
    assert not index.lookup("04A3C6B2445566").found
    assert index.clashes(a) == {}
    index.discard(a)
    assert len(index) == 0
    assert not index.lookup("04A3C6B2", F.HEX_4).matches


def test_index_restricted_to_some_formats() -> None:
    card = uid("E43AC9D2")
    index = CardIndex([card], formats=[F.HEX_REVERSED])
    assert index.formats == (F.HEX, F.HEX_LOWER, F.HEX_REVERSED)
    assert index.lookup("D2C93AE4").card == card
    assert not index.lookup("3536403172").found
    with pytest.raises(ValueError, match="without dec_le"):
        index.lookup("3536403172", F.DEC_LE)
    with pytest.raises(ValueError, match="AUTO"):
        CardIndex(formats=[F.AUTO])


@settings(deadline=None, max_examples=60)
@given(cards=st.lists(uid_cards, min_size=1, max_size=25, unique=True), fmt=concrete_formats)
def test_every_rendering_finds_its_card_and_a_wrong_card_is_never_silent(
    cards: list[CardId], fmt: IdTagFormat
) -> None:
    index = CardIndex(cards)
    for card in cards:
        if fmt not in variants(card):
            continue
        text = render(card, fmt)
        for requested in (fmt, F.AUTO):
            result = index.lookup(text, requested)
            assert card in result.cards
            if result.card != card:
                # a different card (or none) was chosen: that must be visible
                assert result.ambiguous
            if not result.ambiguous:
                assert result.card == card
                assert result.fmt is not None
                assert render(card, result.fmt).upper() == text.upper()


# ---------------------------------------------------------------------------------------------
# Scale


def test_hundred_thousand_cards_index_and_resolve() -> None:
    # Correctness at scale only; lookup latency is measured by a benchmark script, not here.
    rng = random.Random(7)
    cards: set[CardId] = set()
    while len(cards) < 100_000:
        size = rng.choice((4, 7))
        head = rng.choice((0x04, 0x05)) if size == 7 else rng.randrange(0x10, 0x80)
        cards.add(CardId.from_uid(bytes([head]) + rng.randbytes(size - 1)))
    index = CardIndex(cards)
    assert len(index) == 100_000

    sample = rng.sample(sorted(cards, key=lambda c: c.key), 2_000)
    probes = [(render(c, f), f, c) for c in sample for f in (F.HEX, F.HEX_REVERSED, F.DEC_LE)]
    results = [index.lookup(text, F.AUTO) for text, _, _ in probes]
    assert all(card in r.cards for r, (_, _, card) in zip(results, probes, strict=True))


@given(uid_cards, st.binary(min_size=4, max_size=10).filter(lambda b: len(b) in (4, 7, 10)))
def test_the_index_keys_are_the_upper_cased_variants(card: CardId, raw: bytes) -> None:
    # The index derives its keys from the canonical hex (fast, on the start-up path); they must
    # be exactly the variants ``render`` gives, upper-cased, including for any byte values.
    for one in (card, CardId(uid=raw) if any(raw) and raw[0] != 0x88 else card):
        assert one.uid is not None
        expected = {text.upper() for text in variants(one).values()}
        index = CardIndex()
        assert index._keys(one) == expected
