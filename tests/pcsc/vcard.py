"""A contactless card on a vpcd virtual reader, answering the reader's GET DATA with its UID.

vpcd (package vsmartcard-vpcd) is a pcscd reader driver that listens on a TCP port per slot; a
"virtual ICC" connects to it, and that connection *is* the card being on the reader. vpcd
frames every message, both ways, as a 2-byte big-endian length and a payload. A 1-byte payload
from vpcd is a control: 0 power off, 1 power on, 2 reset (no answer to these), 4 "send your
ATR" (vpcd asks this on every presence poll). Longer payloads are command APDUs, answered with
a response APDU.

On a real reader ``FF CA 00 00 00`` is answered by the reader itself; with vpcd it reaches the
virtual card, which answers as a PC/SC part 3 reader would. Everything else is real: pcscd,
its reader driver, libpcsclite and pyscard.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Final

ATR_MIFARE_CLASSIC_1K: Final = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")
"""The ATR a PC/SC reader makes up for a MIFARE Classic 1K (PC/SC part 3, 3.1.3.2.3)."""


class Behaviour(StrEnum):
    OK = "ok"
    """Answer GET DATA with the UID and 90 00."""
    UNSUPPORTED = "unsupported"
    """Answer 6A 81 (function not supported)."""
    VANISH = "vanish"
    """Leave the reader as soon as GET DATA arrives: the card was pulled away mid-read."""
    WRONG_LE = "wrong_le"
    """Answer the first GET DATA with 6C XX (XX = UID length), as some readers do for Le=00."""


class VirtualCard:
    """One card; :meth:`insert` lays it on the reader slot at ``port``, :meth:`remove` takes
    it away. Counts the GET DATA commands it answered and the presence polls it saw."""

    def __init__(
        self,
        port: int,
        uid: bytes,
        behaviour: Behaviour = Behaviour.OK,
        atr: bytes = ATR_MIFARE_CLASSIC_1K,
    ) -> None:
        self.port = port
        self.uid = uid
        self.behaviour = behaviour
        self.atr = atr
        self.reads = 0
        self.polls = 0
        self._changed = threading.Condition()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def insert(self) -> VirtualCard:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.settimeout(None)
        self._sock = sock
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name=f"vcard-{self.uid.hex()}", daemon=True
        )
        self._thread.start()
        return self

    def remove(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def wait_read(self, count: int = 1, timeout: float = 10) -> None:
        """Wait until GET DATA was answered ``count`` times in all."""
        self._wait(lambda: self.reads >= count, timeout, f"{count} GET DATA")

    def wait_polls(self, more: int, timeout: float = 10) -> None:
        """Wait until the reader polled the card ``more`` more times (about 0.4 s each)."""
        target = self.polls + more
        self._wait(lambda: self.polls >= target, timeout, f"{more} presence polls")

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise TimeoutError(f"card {self.uid.hex()}: no {what} within {timeout} s")

    def _serve(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError, EOFError):
            while True:
                message = _recv(sock)
                if len(message) == 1:
                    if message[0] == 4:
                        _send(sock, self.atr)
                        self._bump("polls")  # after: a poll counts once pcscd has its answer
                    continue
                if message[:2] != b"\xff\xca":
                    _send(sock, b"\x6d\x00")  # INS not supported
                    continue
                if self.behaviour is Behaviour.VANISH:
                    self._bump("reads")
                    sock.shutdown(socket.SHUT_RDWR)
                    return
                if self.behaviour is Behaviour.UNSUPPORTED:
                    answer = b"\x6a\x81"
                elif self.behaviour is Behaviour.WRONG_LE and message[4] != len(self.uid):
                    answer = bytes([0x6C, len(self.uid)])
                else:
                    answer = self.uid + b"\x90\x00"
                self._bump("reads")  # before the answer: the reader may check at once
                _send(sock, answer)

    def _bump(self, counter: str) -> None:
        with self._changed:
            setattr(self, counter, getattr(self, counter) + 1)
            self._changed.notify_all()


def _recv(sock: socket.socket) -> bytes:
    (length,) = struct.unpack(">H", _exactly(sock, 2))
    return _exactly(sock, length)


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">H", len(payload)) + payload)
