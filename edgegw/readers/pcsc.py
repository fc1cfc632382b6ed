"""Reading card UIDs from a USB PC/SC reader, so an installer can enrol cards by tapping them.

The reader is asked for the UID with the PC/SC part 3 pseudo-APDU ``FF CA 00 00 00`` (GET DATA,
class ``FF``: the reader answers it itself, the card is not involved), which every contactless
reader that follows PC/SC answers with the UID, byte 0 first, and ``90 00``.

Why synchronous
---------------
pyscard wraps the blocking PC/SC C API, and its only user is the CLI, a short-lived synchronous
typer process; an event loop would only push every call into a thread. Waits never block for
long: :meth:`PcscReaders.wait_for_card` waits in slices of :attr:`PcscReaders.slice_s` (each a
``SCardGetStatusChange`` that returns at once when the reader's state changes), so Ctrl-C is
honoured within a slice and a stopped ``pcscd`` is noticed. Use one :class:`PcscReaders` from
one thread. Async code would run it with ``asyncio.to_thread`` and stop a wait with
:meth:`PcscReaders.cancel`, the one method that may be called from another thread.

Every failure is a :class:`ReaderError` whose message says what happened and whose ``hint``
says what to do, so the CLI can show both as they are.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

GET_UID: Final = bytes.fromhex("FFCA000000")
"""PC/SC part 3 GET DATA, P1 = 00 (UID), Le = 00 (all of it)."""

REMOVAL_GRACE_S: Final = 1.0
"""After a failed read, how long to watch for the card leaving before calling it a read error.
Readers report a removal within a polling period (pcscd polls serial readers every 0.4 s)."""

_PCSCD_HINT: Final = (
    "install and start the PC/SC daemon: `sudo apt install pcscd` then "
    "`sudo systemctl start pcscd.socket`"
)
_SWAP_HINT: Final = "use a contactless (NFC, ISO 14443) reader that follows PC/SC part 3"


# --------------------------------------------------------------------------------------------
# Errors


class ReaderError(Exception):
    """Reading a card failed. The message says what happened, ``hint`` what to do next."""

    hint: str | None = None

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class PcscUnavailable(ReaderError):
    """The PC/SC service (pcscd) is not running, stopped, or its library cannot be loaded."""

    hint = _PCSCD_HINT


class NoReader(ReaderError):
    """No reader is connected."""

    hint = "plug in the USB card reader; `pcsc_scan` (package pcsc-tools) shows what pcscd sees"


class ReaderNotFound(ReaderError):
    """The reader asked for is not among the connected ones."""

    def __init__(self, message: str, readers: Sequence[str]) -> None:
        super().__init__(message, "give --reader the number or (part of) a name listed above")
        self.readers = tuple(readers)


class SeveralReaders(ReaderError):
    """More than one reader is connected and none was chosen."""

    def __init__(self, readers: Sequence[str]) -> None:
        super().__init__(
            f"{len(readers)} card readers are connected: {_numbered(readers)}",
            "choose one with --reader NUMBER or --reader NAME",
        )
        self.readers = tuple(readers)


class ReaderGone(ReaderError):
    """The reader was unplugged (or pcscd lost it) while in use."""

    hint = "plug the reader back in and run the command again"


class CardTimeout(ReaderError, TimeoutError):
    """No card was presented (or the card was not taken away) in time."""


class CardRemoved(ReaderError):
    """The card left the reader before its UID was read."""

    hint = "hold the card still on the reader until its UID is shown"


class CardUnreadable(ReaderError):
    """A card is on the reader but does not answer (mute, unsupported or badly placed)."""

    hint = "lay the card flat on the reader and try again; it may not be an ISO 14443 card"


class UidUnsupported(ReaderError):
    """The reader, or this card type, cannot give a UID through GET DATA."""

    hint = _SWAP_HINT


class ReaderBusy(ReaderError):
    """Another program holds the reader or the card exclusively."""

    hint = "close other smart-card programs (a browser's eID plug-in, a card manager) and retry"


class ReadFailed(ReaderError):
    """Any other failure while reading a card."""

    hint = "take the card away and tap it again"


class Cancelled(ReaderError):
    """:meth:`PcscReaders.cancel` ended a wait."""


# --------------------------------------------------------------------------------------------
# Pure helpers


@dataclass(frozen=True, slots=True)
class CardRead:
    """One card read on one reader: its raw UID (byte 0 first) and its ATR."""

    reader: str
    uid: bytes
    atr: bytes


def resolve_reader(readers: Sequence[str], choice: str | None) -> str:
    """The reader ``choice`` names among ``readers``.

    ``choice`` is a 1-based number as listed, a full name, or a part of a name that only one
    reader has (case-insensitive). None picks the only reader, and raises
    :class:`SeveralReaders` when there are several so the caller can ask which one.
    """
    if not readers:
        raise NoReader("no card reader is connected")
    if choice is None or not choice.strip():
        if len(readers) == 1:
            return readers[0]
        raise SeveralReaders(readers)
    wanted = choice.strip()
    if wanted.isdigit():
        number = int(wanted)
        if 1 <= number <= len(readers):
            return readers[number - 1]
        raise ReaderNotFound(
            f"there is no reader number {number}; connected: {_numbered(readers)}", readers
        )
    if wanted in readers:
        return wanted
    folded = wanted.casefold()
    exact = [r for r in readers if r.casefold() == folded]
    if len(exact) == 1:
        return exact[0]
    partial = [r for r in readers if folded in r.casefold()]
    if len(partial) == 1:
        return partial[0]
    if partial:
        raise ReaderNotFound(
            f"{wanted!r} matches {len(partial)} readers: {_numbered(partial)}; be more precise",
            readers,
        )
    raise ReaderNotFound(f"no reader matches {wanted!r}; connected: {_numbered(readers)}", readers)


def uid_from_response(response: bytes, reader: str) -> bytes:
    """The UID in a GET DATA answer, or the :class:`ReaderError` its status word means.

    ``6C XX`` (wrong length) is handled by the caller, which asks again with ``Le = XX``.
    """
    if len(response) < 2:
        raise ReadFailed(f"{reader} gave an incomplete answer to GET DATA: {response.hex()}")
    data, sw = response[:-2], response[-2:].hex().upper()
    if sw == "9000" or (sw == "6282" and data):  # 62 82: the UID is shorter than Le asked
        if not data:
            raise ReadFailed(f"{reader} answered GET DATA with no UID")
        return data
    if sw in ("6A81", "6A82"):
        raise UidUnsupported(
            f"{reader} cannot read this card's UID (GET DATA answered {_sw(sw)}: not supported);"
            " the reader may not support UID reading, or this card type has no UID"
        )
    if sw in ("6E00", "6D00"):
        raise UidUnsupported(
            f"{reader} does not understand the PC/SC GET DATA command (answered {_sw(sw)}); "
            "it is probably a contact-only smart-card reader"
        )
    if sw == "6300":
        raise ReadFailed(f"{reader} could not read the card's UID (63 00)")
    raise ReadFailed(f"{reader} answered GET DATA with status {_sw(sw)}")


def _sw(sw: str) -> str:
    return f"{sw[:2]} {sw[2:]}"


def _numbered(readers: Sequence[str]) -> str:
    return ", ".join(f"{i}) {name}" for i, name in enumerate(readers, 1))


def load_scard() -> ModuleType:
    """pyscard's low-level ``smartcard.scard`` module, loaded on first use.

    Loaded lazily so that the rest of the CLI works on a machine without ``libpcsclite``.
    """
    try:
        return importlib.import_module("smartcard.scard")
    except ImportError as exc:
        raise PcscUnavailable(
            f"the PC/SC library cannot be loaded ({exc})",
            "install it: `sudo apt install libpcsclite1 pcscd`",
        ) from None


def scard_error(scard: Any, hresult: int, reader: str, doing: str) -> ReaderError:
    """The :class:`ReaderError` for a failed PC/SC call (``doing`` says which, for people)."""
    hr = hresult & 0xFFFFFFFF

    def named(*names: str) -> bool:
        return any(hr == getattr(scard, n, -1) & 0xFFFFFFFF for n in names)

    if named("SCARD_E_NO_SERVICE", "SCARD_E_SERVICE_STOPPED", "SCARD_F_COMM_ERROR"):
        return PcscUnavailable(f"the PC/SC service pcscd stopped while {doing}")
    if named("SCARD_E_UNKNOWN_READER", "SCARD_E_READER_UNAVAILABLE"):
        return ReaderGone(f"{reader} is no longer connected (it was unplugged while {doing})")
    if named("SCARD_W_REMOVED_CARD", "SCARD_E_NO_SMARTCARD"):
        return CardRemoved(f"the card was taken away from {reader} while {doing}")
    if named("SCARD_W_UNRESPONSIVE_CARD", "SCARD_W_UNPOWERED_CARD", "SCARD_W_UNSUPPORTED_CARD"):
        return CardUnreadable(f"the card on {reader} does not answer ({doing})")
    if named("SCARD_E_SHARING_VIOLATION"):
        return ReaderBusy(f"another program is using the card on {reader}")
    if named("SCARD_E_CANCELLED"):
        return Cancelled(f"stopped while {doing}")
    if named("SCARD_E_NO_READERS_AVAILABLE"):
        return NoReader("no card reader is connected")
    try:
        text = str(scard.SCardGetErrorMessage(hresult)).strip()
    except Exception:  # only for the message; the code is shown anyway
        text = "PC/SC error"
    return ReadFailed(f"{reader}: {text} (0x{hr:08X}) while {doing}")


# --------------------------------------------------------------------------------------------
# The PC/SC context


class PcscReaders:
    """One PC/SC context: lists readers, waits for cards and reads their UIDs.

    Open it with ``with PcscReaders() as pcsc:``; creating it raises :class:`PcscUnavailable`
    when pcscd does not run. Methods block (see the module docstring).
    """

    def __init__(
        self,
        *,
        slice_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        scard: ModuleType | None = None,
    ) -> None:
        self.slice_s = slice_s
        self._clock = clock
        self._scard: Any = scard if scard is not None else load_scard()
        sc = self._scard
        hr, context = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
        if hr != sc.SCARD_S_SUCCESS:
            error = scard_error(sc, hr, "", "connecting to pcscd")
            if isinstance(error, PcscUnavailable):
                raise PcscUnavailable("the PC/SC service pcscd is not running") from None
            raise error
        self._context: Any = context

    def __enter__(self) -> PcscReaders:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._context is not None:
            self._scard.SCardReleaseContext(self._context)
            self._context = None

    def cancel(self) -> None:
        """End a wait in progress (it raises :class:`Cancelled`). Safe from another thread."""
        if self._context is not None:
            self._scard.SCardCancel(self._context)

    # ------------------------------------------------------------ readers

    def readers(self) -> list[str]:
        """The connected readers, in pcscd's order."""
        sc = self._scard
        hr, names = sc.SCardListReaders(self._context, [])
        if hr == sc.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if hr != sc.SCARD_S_SUCCESS:
            raise self._error(hr, "", "listing the readers")
        return list(names)

    def choose(self, choice: str | None) -> str:
        """:func:`resolve_reader` among the connected readers."""
        return resolve_reader(self.readers(), choice)

    # ------------------------------------------------------------ cards

    def wait_for_card(self, reader: str, timeout: float) -> bytes:
        """Wait until a card is on ``reader`` (also one already there); returns its ATR.

        Raises :class:`CardTimeout` after ``timeout`` seconds without a card.
        """
        sc = self._scard
        found = self._wait(reader, lambda s: bool(s & sc.SCARD_STATE_PRESENT), timeout, "waiting")
        if found is None:
            raise CardTimeout(
                f"no card was presented on {reader} within {timeout:g} s",
                "tap the card flat on the reader; give more time with --timeout",
            )
        return found[1]

    def wait_for_removal(self, reader: str, timeout: float) -> bool:
        """Wait until ``reader`` is empty; False if the card is still there after ``timeout``."""
        sc = self._scard
        present = sc.SCARD_STATE_PRESENT
        return self._wait(reader, lambda s: not s & present, timeout, "waiting") is not None

    def read_uid(self, reader: str) -> bytes:
        """The UID of the card on ``reader``, byte 0 first (GET DATA ``FF CA 00 00 00``)."""
        sc = self._scard
        protocols = sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
        hr, card, protocol = sc.SCardConnect(
            self._context, reader, sc.SCARD_SHARE_SHARED, protocols
        )
        if hr != sc.SCARD_S_SUCCESS:
            raise self._failed(reader, hr, "connecting to the card")
        try:
            response = self._transmit(reader, card, protocol, GET_UID)
            sw = response[-2:]
            if len(response) == 2 and sw[0] == 0x6C and sw[1]:  # 6C XX: ask again with Le = XX
                response = self._transmit(reader, card, protocol, GET_UID[:4] + sw[1:])
            return uid_from_response(response, reader)
        finally:
            sc.SCardDisconnect(card, sc.SCARD_LEAVE_CARD)

    def next_card(self, reader: str, timeout: float) -> CardRead:
        """Wait for a card on ``reader`` (at most ``timeout`` s) and read its UID."""
        atr = self.wait_for_card(reader, timeout)
        return CardRead(reader, self.read_uid(reader), atr)

    # ------------------------------------------------------------ internals

    def _transmit(self, reader: str, card: Any, protocol: int, apdu: bytes) -> bytes:
        sc = self._scard
        hr, response = sc.SCardTransmit(card, protocol, list(apdu))
        if hr != sc.SCARD_S_SUCCESS or len(response) < 2:
            raise self._failed(reader, hr, "reading the UID")
        return bytes(response)

    def _error(self, hresult: int, reader: str, doing: str) -> ReaderError:
        """:func:`scard_error`, except that an unexpected code from a pcscd that is going away
        (it can answer garbage while it exits) is reported as pcscd stopping."""
        error = scard_error(self._scard, hresult, reader, doing)
        if type(error) is ReadFailed and self._service_gone():
            return PcscUnavailable(f"the PC/SC service pcscd stopped while {doing}")
        return error

    def _service_gone(self) -> bool:
        sc = self._scard
        hr, _ = sc.SCardListReaders(self._context, [])
        return hr not in (sc.SCARD_S_SUCCESS, sc.SCARD_E_NO_READERS_AVAILABLE)

    def _failed(self, reader: str, hresult: int, doing: str) -> ReaderError:
        """The error for a failed card exchange: a card that just left counts as removed."""
        sc = self._scard
        error: ReaderError | None = None
        if hresult != sc.SCARD_S_SUCCESS:
            error = self._error(hresult, reader, doing)
            if not isinstance(error, (ReadFailed, CardUnreadable)):
                return error
        try:
            gone = self._wait(
                reader, lambda s: not s & sc.SCARD_STATE_PRESENT, REMOVAL_GRACE_S, doing
            )
        except ReaderError as exc:
            return exc
        if gone is not None:
            return CardRemoved(f"the card was taken away from {reader} before its UID was read")
        return error or ReadFailed(f"{reader} did not answer GET DATA ({doing})")

    def _wait(
        self, reader: str, done: Callable[[int], bool], timeout: float, doing: str
    ) -> tuple[int, bytes] | None:
        """Wait until ``done(state)`` holds for ``reader``; (state, ATR), or None on timeout."""
        sc = self._scard
        deadline = self._clock() + max(timeout, 0.0)
        current = sc.SCARD_STATE_UNAWARE
        while True:
            remaining = deadline - self._clock()
            wait_ms = 0 if current == sc.SCARD_STATE_UNAWARE else _ms(min(self.slice_s, remaining))
            hr, states = sc.SCardGetStatusChange(self._context, wait_ms, [(reader, current)])
            if hr == sc.SCARD_E_TIMEOUT:
                if remaining <= 0:
                    return None
                continue
            if hr != sc.SCARD_S_SUCCESS:
                raise self._error(hr, reader, doing)
            _, state, atr = states[0]
            if state & (sc.SCARD_STATE_UNKNOWN | sc.SCARD_STATE_IGNORE):
                raise ReaderGone(f"{reader} is no longer connected (it was unplugged)")
            if done(state):
                return state, bytes(atr)
            if remaining <= 0:
                return None
            current = state & ~sc.SCARD_STATE_CHANGED


def _ms(seconds: float) -> int:
    return max(0, int(seconds * 1000))
