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

if TYPE_CHECKING:
    from edgegw.auth.authorizer import Authorizer
    from edgegw.daemon import Gateway

MAX_TIMEOUT: Final = 600.0
DEFAULT_TIMEOUT: Final = 120.0


class LearnOps:
    """Registers ``cards.learn`` and puts its :class:`CardLearner` among the gateway's observers.

    Register it before chargers connect: a charger session takes the observer list it starts
    with.
    """

    def __init__(self, gateway: Gateway, learner: CardLearner | None = None) -> None:
        self._gw = gateway
        self.learner = learner if learner is not None else CardLearner()

    def register(self, server: ControlServer) -> None:
        server.register(
            "cards.learn",
            self.learn,
            admin=True,
            description="Capture the next card tapped at a charger (args: charger, timeout).",
        )
        if self.learner not in self._gw.observers:
            self._gw.observers.append(self.learner)

    async def learn(self, args: dict[str, Any]) -> dict[str, Any]:
        """Wait for the next tag at ``charger``; ``{"captured": false}`` after ``timeout``."""
        gw = self._gw
        charger_id = get_arg(args, "charger", str).strip()
        timeout = get_arg(args, "timeout", float, DEFAULT_TIMEOUT)
        if not 1 <= timeout <= MAX_TIMEOUT:
            raise ControlError(
                ErrorCode.BAD_ARGS, f"timeout must be between 1 and {MAX_TIMEOUT:g} s"
            )
        if gw.config.charger(charger_id) is None and charger_id not in gw.sessions:
            known = ", ".join(c.id for c in gw.config.chargers) or "none"
            raise ControlError(
                ErrorCode.NOT_FOUND,
                f"no charger {charger_id!r} is configured (configured: {known})",
            )
        if charger_id not in gw.sessions:
            raise ControlError(
                ErrorCode.UNAVAILABLE,
                f"{charger_id} is not connected to the gateway, so it cannot report a card; "
                "check that it is powered and that its OCPP URL points at the gateway "
                "(`edgegw status` lists the connected chargers)",
            )
        authorizer = gw.authorizer
        if authorizer is None:
            raise ControlError(ErrorCode.UNAVAILABLE, "the daemon is starting; try again")
        try:
            captured = await self.learner.capture(charger_id, timeout)
        except TimeoutError:
            return {"captured": False, "charger": charger_id, "timeout": timeout}
        fmt, source = charger_format(gw, authorizer, charger_id)
        return learned_json(captured, read_captured(captured.id_tag, fmt, source), authorizer)


def charger_format(
    gateway: Gateway, authorizer: Authorizer, charger_id: str
) -> tuple[IdTagFormat, FormatSource]:
    """How ``charger_id`` writes card ids, and where that knowledge comes from."""
    charger = gateway.config.charger(charger_id)
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
