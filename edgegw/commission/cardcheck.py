"""The checklist's card step: is a test card accepted at this charger?

With ``--card`` the gateway decides the card as this charger would report it (its idTag
format, configured or detected); with ``--tap`` the run waits for a card tapped at the charger
and reads the answer it got (from the cloud, or from the gateway while offline). That answer is
the one the charger acted on: when the site's own records refuse the card there, the charger
heard the refusal even if the cloud accepted it (``auth.site_overrides_cloud``), and the step
says why.
"""

from __future__ import annotations

from edgegw.auth.idtags import CardId, IdTagFormat, interpretations, render
from edgegw.commission.observer import Exchange
from edgegw.commission.run import RunState, Step
from edgegw.ocpp.events import CardAnswered


class CardSteps(RunState):
    """The step ``card``, on the run's shared state (the checklist has every step)."""

    async def check_card(self, step: Step) -> None:
        """``card``: the gateway's own decision for a test card, and a tap at the charger."""
        if self.opt.card is None and not self.opt.tap:
            step.set("skip", "no test card given (--card UID, --tap)")
            return
        parts: list[str] = []
        failed = False
        hint: str | None = None
        if self.opt.card is not None:
            decided, text, hint = self._decide(self.opt.card)
            parts.append(text)
            failed = decided is False
        if self.opt.tap:
            ok, text, tap_hint = await self._tap()
            parts.append(text)
            failed = failed or not ok
            hint = hint or tap_hint
        if failed:
            step.set("fail", "; ".join(parts), hint)
        else:
            step.set("pass", "; ".join(parts))

    def _decide(self, card: CardId) -> tuple[bool | None, str, str | None]:
        """The gateway's own decision for ``card`` at this charger (None: not decided)."""
        authorizer = self.gw.authorizer
        if authorizer is None:
            return None, "the card authority is not running", None
        fmt = authorizer.charger_format(self.charger_id)
        configured = self.config.idtag_format if self.config else None
        if fmt is IdTagFormat.AUTO:
            # Deciding would teach the authorizer this charger's format from typed text.
            return (
                None,
                f"card {card.canonical}: not decided locally, because how {self.charger_id} "
                "writes card UIDs is not known yet (tap a card at it, or set its idtag_format)",
                None,
            )
        try:
            presented = render(card, fmt)
        except ValueError as exc:
            return False, f"card {card.canonical}: {exc}", None
        free = self.config.free_charging_tag if self.config else None
        decision = authorizer.decide(self.charger_id, presented, fmt=fmt, free_tag=free)
        source = "configured" if configured and configured != "auto" else "detected"
        text = (
            f"card {card.canonical} (as {presented!r}, {fmt.value} {source}): "
            f"{decision.status.value} by the gateway — {decision.reason}"
        )
        if decision.accepted:
            return True, text, None
        return False, text, f"add or unblock it: `edgegw cards add {card.canonical}`"

    async def _tap(self) -> tuple[bool, str, str | None]:
        card = self.opt.card

        def matches(e: Exchange) -> bool:
            if not isinstance(e.event, CardAnswered):
                return False
            tag = e.event.id_tag
            if card is None:
                return True
            return tag.casefold() == card.canonical.casefold() or card in (
                interpretations(tag).values()
            )

        which = f"card {card.canonical}" if card else "a card"
        try:
            tapped = await self.obs.wait(
                self.charger_id,
                ["Authorize", "StartTransaction"],
                since=self.started,
                timeout=self.opt.tap_timeout,
                predicate=matches,
            )
        except TimeoutError:
            return (
                False,
                f"nobody tapped {which} at {self.charger_id} within {self.opt.tap_timeout:.0f} s",
                "tap the card on the charger's reader while the checklist waits",
            )
        answered = tapped.event
        assert isinstance(answered, CardAnswered)  # what matches() let through
        status, id_tag = answered.status, answered.id_tag
        text = f"tapped as {id_tag!r}: {tapped.action} {status}"
        authorizer = self.gw.authorizer
        refusal = None if authorizer is None else authorizer.site_refusal(self.charger_id, id_tag)
        if status == "Accepted":
            if refusal is not None:  # the cloud decides alone here (site_overrides_cloud off)
                text += (
                    f"; the charger charges with it although the site's records refuse it "
                    f"({refusal.reason})"
                )
            return True, text, None
        if refusal is not None:
            text += f" (the site's records refuse it here: {refusal.reason})"
            shown = refusal.card.canonical if refusal.card is not None else id_tag
            return False, text, f"see `edgegw cards show {shown}`"
        return False, text, "check the card in `edgegw cards show` and the cloud's card list"
