"""pytest fixtures: one private pcscd per test session, and cards to tap on its readers.

Bind them in a test module (``pcscd = fixtures.pcscd``, ``taps = fixtures.taps``). Tests that
use them are skipped, with the reason, where pcscd, vpcd or a mount namespace is unavailable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from edgegw.readers.pcsc import PcscReaders
from tests.pcsc.pcscd import Pcscd, unavailable
from tests.pcsc.vcard import Behaviour, VirtualCard

READER_NAME = "edgegw Test Reader"
"""The session pcscd's vpcd reader; pcscd lists its two slots as ``... 00 00`` and ``... 00 01``."""


_DAEMON: pytest.StashKey[Pcscd] = pytest.StashKey()


@pytest.fixture(scope="session")
def pcscd(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Pcscd:
    """The private pcscd of this test process, with the reader :data:`READER_NAME`.

    One per process, whichever module asks first: libpcsclite reads ``PCSCLITE_CSOCK_NAME``
    once per process, so it is set here before any PC/SC call and never changed. (Each module
    that imports this fixture gets its own session fixture, hence the instance is kept in the
    pytest config's stash.) It is stopped when the session ends.
    """
    config = request.config
    daemon = config.stash.get(_DAEMON, None)
    if daemon is not None:
        return daemon
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    daemon = Pcscd(tmp_path_factory.mktemp("pcscd"), READER_NAME)
    daemon.start()
    config.add_cleanup(daemon.stop)
    config.stash[_DAEMON] = daemon
    previous = os.environ.get("PCSCLITE_CSOCK_NAME")
    os.environ["PCSCLITE_CSOCK_NAME"] = str(daemon.socket)

    def restore() -> None:
        if previous is None:
            os.environ.pop("PCSCLITE_CSOCK_NAME", None)
        else:
            os.environ["PCSCLITE_CSOCK_NAME"] = previous

    config.add_cleanup(restore)
    return daemon


class Taps:
    """Cards for one test; at teardown every card leaves and the readers are seen empty."""

    def __init__(self, daemon: Pcscd) -> None:
        self.pcscd = daemon
        self._cards: list[VirtualCard] = []

    def card(self, uid: str, *, slot: int = 0, behaviour: Behaviour = Behaviour.OK) -> VirtualCard:
        """A card for reader slot ``slot``, not yet on it (call ``insert()``)."""
        card = VirtualCard(self.pcscd.port(slot), bytes.fromhex(uid), behaviour)
        self._cards.append(card)
        return card

    def reader(self, slot: int = 0) -> str:
        return self.pcscd.reader(slot)

    def take_away(self, card: VirtualCard) -> None:
        """Remove ``card`` and wait until pcscd saw it go (it polls vpcd every 0.4 s; a real
        reader notices at once, faster than a hand can lay the next card)."""
        card.remove()
        with PcscReaders() as pcsc:
            reader = self.pcscd.reader(card.port - self.pcscd.base_port)
            assert pcsc.wait_for_removal(reader, 5), f"{reader} still shows a card"

    def close(self) -> None:
        for card in self._cards:
            card.remove()
        with PcscReaders() as pcsc:
            for card in self._cards:
                reader = self.pcscd.reader(card.port - self.pcscd.base_port)
                assert pcsc.wait_for_removal(reader, 5), f"{reader} still shows a card"


@pytest.fixture
def taps(pcscd: Pcscd) -> Iterator[Taps]:
    tapped = Taps(pcscd)
    try:
        yield tapped
    finally:
        tapped.close()


__all__ = ["READER_NAME", "Taps", "pcscd", "taps"]
