"""Reading card UIDs through a real pcscd, its vpcd virtual readers and virtual cards."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgegw.readers import pcsc as reader_module
from edgegw.readers.pcsc import (
    Cancelled,
    CardRemoved,
    CardTimeout,
    NoReader,
    PcscReaders,
    PcscUnavailable,
    ReaderGone,
    ReaderNotFound,
    SeveralReaders,
    UidUnsupported,
    load_scard,
    resolve_reader,
    scard_error,
    uid_from_response,
)
from tests.pcsc import fixtures
from tests.pcsc.fixtures import Taps
from tests.pcsc.pcscd import Pcscd
from tests.pcsc.vcard import Behaviour

UID7 = "04A1B2C3D4E5F6"

pcscd = fixtures.pcscd  # the session's private pcscd
taps = fixtures.taps  # cards to tap on its readers


def test_lists_the_readers_pcscd_has(pcscd: Pcscd) -> None:
    with PcscReaders() as pcsc:
        readers = pcsc.readers()
    assert readers == pcscd.readers


def test_reads_the_uid_of_the_card_on_the_reader(taps: Taps) -> None:
    card = taps.card(UID7).insert()
    with PcscReaders() as pcsc:
        read = pcsc.next_card(taps.reader(), timeout=5)
    assert read.uid == bytes.fromhex(UID7)
    assert read.atr == card.atr
    assert read.reader == taps.reader()
    assert card.reads == 1


def test_a_card_already_on_the_reader_is_read_at_once(taps: Taps) -> None:
    card = taps.card("E43AC9D2").insert()
    card.wait_polls(1)  # pcscd has seen it
    with PcscReaders() as pcsc:
        assert pcsc.next_card(taps.reader(), timeout=5).uid == bytes.fromhex("E43AC9D2")


def test_no_card_within_the_timeout(taps: Taps) -> None:
    with PcscReaders(slice_s=0.2) as pcsc:
        started = time.monotonic()
        with pytest.raises(CardTimeout, match=r"no card was presented on .* within 0\.6 s"):
            pcsc.next_card(taps.reader(), timeout=0.6)
    assert 0.5 <= time.monotonic() - started < 3


def test_waits_for_the_card_to_leave(taps: Taps) -> None:
    card = taps.card("E43AC9D2").insert()
    with PcscReaders() as pcsc:
        pcsc.next_card(taps.reader(), timeout=5)
        assert not pcsc.wait_for_removal(taps.reader(), 0.3)
        card.remove()
        assert pcsc.wait_for_removal(taps.reader(), 5)


def test_a_wrong_length_answer_is_asked_again_with_the_right_one(taps: Taps) -> None:
    card = taps.card(UID7, behaviour=Behaviour.WRONG_LE).insert()
    with PcscReaders() as pcsc:
        assert pcsc.next_card(taps.reader(), timeout=5).uid == bytes.fromhex(UID7)
    assert card.reads == 2


def test_unsupported_get_data_is_a_clear_error(taps: Taps) -> None:
    taps.card(UID7, behaviour=Behaviour.UNSUPPORTED).insert()
    with PcscReaders() as pcsc, pytest.raises(UidUnsupported, match="6A 81") as caught:
        pcsc.next_card(taps.reader(), timeout=5)
    assert caught.value.hint is not None and "contactless" in caught.value.hint


def test_a_card_pulled_away_mid_read_is_reported_as_removed(taps: Taps) -> None:
    card = taps.card(UID7, behaviour=Behaviour.VANISH).insert()
    with PcscReaders() as pcsc, pytest.raises(CardRemoved, match="taken away") as caught:
        pcsc.next_card(taps.reader(), timeout=5)
    assert card.reads == 1
    assert caught.value.hint is not None and "hold the card" in caught.value.hint


def test_two_readers_each_see_their_own_card(taps: Taps) -> None:
    taps.card("E43AC9D2", slot=0).insert()
    taps.card(UID7, slot=1).insert()
    with PcscReaders() as pcsc:
        second = pcsc.choose("test reader 00 01")
        first = pcsc.choose("1")
        assert (first, second) == (taps.reader(0), taps.reader(1))
        assert pcsc.next_card(second, timeout=5).uid == bytes.fromhex(UID7)
        assert pcsc.next_card(first, timeout=5).uid == bytes.fromhex("E43AC9D2")


def test_cancel_ends_a_wait_from_another_thread(taps: Taps) -> None:
    with PcscReaders(slice_s=10) as pcsc:
        stopper = threading.Timer(0.1, pcsc.cancel)
        stopper.start()
        started = time.monotonic()
        with pytest.raises(Cancelled):
            pcsc.wait_for_card(taps.reader(), timeout=20)
        stopper.join()
    assert time.monotonic() - started < 5


def test_an_unknown_reader_name_is_a_clear_error(pcscd: Pcscd) -> None:
    with PcscReaders() as pcsc, pytest.raises(ReaderGone, match="no longer connected"):
        pcsc.wait_for_card("Kitchen Reader 00 00", timeout=1)


def test_pcscd_not_running(tmp_path: Path) -> None:
    """libpcsclite reads the socket path once per process: a fresh process sees none."""
    code = (
        "from edgegw.readers.pcsc import PcscReaders, PcscUnavailable\n"
        "try:\n    PcscReaders()\n"
        "except PcscUnavailable as exc:\n    print(exc, '|', exc.hint)\n"
    )
    env = {"PCSCLITE_CSOCK_NAME": str(tmp_path / "pcscd.comm"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "the PC/SC service pcscd is not running" in out.stdout
    assert "systemctl start pcscd" in out.stdout


# ------------------------------------------------------------------ without pcscd


def test_resolve_reader_by_number_name_or_part() -> None:
    readers = ["ACS ACR122U PICC Interface 00 00", "Identiv uTrust 3700 F 01 00"]
    assert resolve_reader(readers, "2") == readers[1]
    assert resolve_reader(readers, "acr122") == readers[0]
    assert resolve_reader(readers, readers[1]) == readers[1]
    assert resolve_reader(readers[:1], None) == readers[0]
    with pytest.raises(SeveralReaders) as several:
        resolve_reader(readers, None)
    assert "1) ACS ACR122U" in str(several.value) and several.value.readers == tuple(readers)
    with pytest.raises(ReaderNotFound, match="there is no reader number 3"):
        resolve_reader(readers, "3")
    with pytest.raises(ReaderNotFound, match="matches 2 readers"):
        resolve_reader(readers, "I")
    with pytest.raises(ReaderNotFound, match="no reader matches 'omnikey'"):
        resolve_reader(readers, "omnikey")
    with pytest.raises(NoReader):
        resolve_reader([], None)


@pytest.mark.parametrize(
    ("response", "error", "text"),
    [
        ("6A81", UidUnsupported, "not supported"),
        ("6E00", UidUnsupported, "contact-only"),
        ("6300", reader_module.ReadFailed, "could not read"),
        ("9000", reader_module.ReadFailed, "no UID"),
        ("6985", reader_module.ReadFailed, "69 85"),
    ],
)
def test_status_words_say_what_went_wrong(response: str, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        uid_from_response(bytes.fromhex(response), "R")


def test_status_words_that_carry_the_uid() -> None:
    assert uid_from_response(bytes.fromhex("E43AC9D29000"), "R") == bytes.fromhex("E43AC9D2")
    assert uid_from_response(bytes.fromhex("E43AC9D26282"), "R") == bytes.fromhex("E43AC9D2")


def test_pcsc_failures_map_to_errors_people_understand() -> None:
    scard = load_scard()
    cases = {
        scard.SCARD_E_NO_SERVICE: PcscUnavailable,
        scard.SCARD_E_SERVICE_STOPPED: PcscUnavailable,
        scard.SCARD_F_COMM_ERROR: PcscUnavailable,
        scard.SCARD_E_UNKNOWN_READER: ReaderGone,
        scard.SCARD_E_READER_UNAVAILABLE: ReaderGone,
        scard.SCARD_W_REMOVED_CARD: CardRemoved,
        scard.SCARD_E_SHARING_VIOLATION: reader_module.ReaderBusy,
        scard.SCARD_W_UNRESPONSIVE_CARD: reader_module.CardUnreadable,
    }
    for code, kind in cases.items():
        error = scard_error(scard, code, "Desk Reader", "reading the UID")
        assert type(error) is kind, (hex(code), error)
        assert error.hint
    other = scard_error(scard, scard.SCARD_E_INVALID_ATR, "Desk Reader", "reading the UID")
    assert "0x80100015" in str(other)
