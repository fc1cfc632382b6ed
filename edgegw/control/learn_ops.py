"""The ``cards.learn`` control op: the next card tapped at a charger, read as a card.

The op waits (up to ``timeout`` seconds) for the charger's next ``Authorize`` or
``StartTransaction``, reads its idTag in the charger's idTag format (configured, else detected,
else assumed hex) and returns it; it adds nothing. ``edgegw cards learn`` then enrols the card
with ``cards.add``, so a learnt card is stored exactly like one typed or read on a USB reader.
The charger is answered as usual meanwhile (see :mod:`edgegw.auth.learn`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from edgegw.auth.idtags import IdTagFormat
from edgegw.auth.learn import CapturedTag, CardLearner, FormatSource, LearnedCard, read_captured
from edgegw.control.protocol import ControlError, ErrorCode, get_arg
from edgegw.control.server import ControlServer
from edgegw.services.errors import NotConnected
from edgegw.services.ports import ChargerDirectory, require_connected

if TYPE_CHECKING:
    from edgegw.auth.authorizer import Authorizer
    from edgegw.config import ChargerConfig

MAX_TIMEOUT: Final = 600.0
DEFAULT_TIMEOUT: Final = 120.0


class LearnOps:
    """Registers ``cards.learn``, over the daemon's :class:`CardLearner` (which the daemon
    subscribes to the chargers' events), its ``chargers`` and its ``authorizer``."""

    def __init__(
        self, learner: CardLearner, chargers: ChargerDirectory, authorizer: Authorizer
    ) -> None:
        self.learner = learner
        self._chargers = chargers
        self._authorizer = authorizer

    def register(self, server: ControlServer) -> None:
        server.register(
            "cards.learn",
            self.learn,
            admin=True,
            description="Capture the next card tapped at a charger (args: charger, timeout).",
        )

    async def learn(self, args: dict[str, Any]) -> dict[str, Any]:
        """Wait for the next tag at ``charger``; ``{"captured": false}`` after ``timeout``."""
        charger_id = get_arg(args, "charger", str).strip()
        timeout = get_arg(args, "timeout", float, DEFAULT_TIMEOUT)
        if not 1 <= timeout <= MAX_TIMEOUT:
            raise ControlError(
                ErrorCode.BAD_ARGS, f"timeout must be between 1 and {MAX_TIMEOUT:g} s"
            )
        try:
            require_connected(self._chargers, charger_id)
        except NotConnected:
            raise ControlError(
                ErrorCode.UNAVAILABLE,
                f"{charger_id} is not connected to the gateway, so it cannot report a card; "
                "check that it is powered and that its OCPP URL points at the gateway "
                "(`edgegw status` lists the connected chargers)",
            ) from None
        authorizer = self._authorizer
        try:
            captured = await self.learner.capture(charger_id, timeout)
        except TimeoutError:
            return {"captured": False, "charger": charger_id, "timeout": timeout}
        configured = self._chargers.configured(charger_id)
        fmt, source = charger_format(configured, authorizer, charger_id)
        return learned_json(captured, read_captured(captured.id_tag, fmt, source), authorizer)


def charger_format(
    charger: ChargerConfig | None, authorizer: Authorizer, charger_id: str
) -> tuple[IdTagFormat, FormatSource]:
    """How ``charger_id`` (configured as ``charger``) writes card ids, and where that
    knowledge comes from."""
    if charger is not None and charger.idtag_format not in (None, IdTagFormat.AUTO.value):
        return IdTagFormat(charger.idtag_format), "configured"
    detected = authorizer.detected_format(charger_id)
    if detected is not None:
        return detected.fmt, "detected"
    return IdTagFormat.AUTO, "assumed"


def learned_json(
    captured: CapturedTag, learned: LearnedCard, authorizer: Authorizer
) -> dict[str, Any]:
    """The op's answer: what the charger sent, the card it reads as, and whether it is known."""
    card = learned.card
    enrolled = None
    if card is not None and not card.is_random_uid:
        known = authorizer.card(card)
        if known is not None:
            enrolled = {
                "id": known.id.canonical,
                "owner": known.owner,
                "label": known.label,
                "status": known.status.value,
            }
    return {
        "captured": True,
        "charger": captured.charger_id,
        "action": captured.action,
        "id_tag": captured.id_tag,
        "answered": captured.answered,
        "at": captured.at,
        "card": None if card is None else card.canonical,
        "kind": None if card is None else ("uid" if card.is_uid else "token"),
        "format": learned.fmt.value,
        "format_source": learned.source,
        "random_uid": card is not None and card.is_random_uid,
        "problem": learned.problem,
        "alternatives": [
            {"format": fmt.value, "card": other.canonical}
            for fmt, other in learned.alternatives.items()
        ],
        "enrolled": enrolled,
    }
