"""Plain 2.0.1 tokens (Central, eMAID, KeyCode...) are decided on their text, literally.

A card UID is read in the charger's idTag format (reversed, decimal...): a hex-shaped central
token must not match a card whose UID merely renders as that text in some format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edgegw.auth.authorizer import Authorizer, Layer
from edgegw.auth.idtags import CardId, IdTagFormat, render
from edgegw.auth.locallist import AuthStatus, Card
from edgegw.config import AuthConfig
from edgegw.proxy.frames import Call
from edgegw.proxy.local201 import LocalResponder201
from edgegw.store.db import Database
from tests.conftest import GatewayFactory

F = IdTagFormat
NOW = 1_700_000_000.0
ALICE = CardId.from_uid(bytes.fromhex("E43AC9D2"))

Opener = Callable[..., Awaitable[Authorizer]]


@pytest.fixture
async def auth(tmp_path: Path) -> AsyncIterator[Authorizer]:
    db = await Database.open(tmp_path / "edgegw.db")
    authorizer = await Authorizer.open(
        db, AuthConfig(unknown_cards="reject"), formats={"CP2": F.AUTO}, clock=lambda: NOW
    )
    yield authorizer
    await authorizer.close()
    await db.close()


async def test_a_central_token_does_not_match_a_uid_variant(auth: Authorizer) -> None:
    await auth.add_card(Card(ALICE, owner="Alice"))
    reversed_tag = render(ALICE, F.HEX_REVERSED)
    decimal_tag = render(ALICE, F.DEC_LE)
    # read as a card UID, both are Alice's card
    assert auth.decide("CP2", reversed_tag, fmt=F.AUTO).accepted
    # read literally (a Central / eMAID / KeyCode token), neither is
    for text in (reversed_tag, decimal_tag):
        literal = auth.decide("CP1", text, fmt=F.AUTO, literal=True)
        assert (literal.status, literal.layer) == (AuthStatus.INVALID, Layer.POLICY), text
    # a literal decision teaches an auto charger no idTag format
    assert auth.detected_format("CP1") is None


async def test_a_literal_token_matches_its_own_text_case_insensitively(auth: Authorizer) -> None:
    await auth.add_card(Card(CardId.from_token("EMAID-DE-ABC-1"), owner="Bob"))
    await auth.add_card(Card(ALICE, status=AuthStatus.BLOCKED))
    token = auth.decide("CP1", "emaid-de-abc-1", fmt=F.AUTO, literal=True)
    assert (token.accepted, token.layer) == (True, Layer.INSTALLER)
    # a token that is the card's own enrolled text is that card (here: blocked)
    same = auth.decide("CP1", "e43ac9d2", fmt=F.AUTO, literal=True)
    assert same.status is AuthStatus.BLOCKED


async def test_a_literal_token_is_no_random_uid_and_the_cloud_list_is_literal_too(
    auth: Authorizer,
) -> None:
    await auth.send_local_list(
        {
            "listVersion": 3,
            "updateType": "Full",
            "localAuthorizationList": [
                {"idTag": "E43AC9D2", "idTagInfo": {"status": "Accepted"}},
            ],
        }
    )
    assert auth.decide("CP1", render(ALICE, F.HEX_REVERSED), fmt=F.AUTO).accepted
    refused = auth.decide("CP1", render(ALICE, F.HEX_REVERSED), fmt=F.AUTO, literal=True)
    assert refused.layer is Layer.POLICY
    random_looking = auth.decide("CP1", "08A1B2C3", fmt=F.AUTO, literal=True)
    assert random_looking.layer is Layer.POLICY  # a central token, not a random UID


def test_local201_decides_plain_tokens_with_the_literal_decider() -> None:
    asked: list[tuple[str, str]] = []

    def by_uid(charger_id: str, text: str) -> dict[str, Any]:
        asked.append(("uid", text))
        return {"status": "Accepted"}

    def literal(charger_id: str, text: str) -> dict[str, Any]:
        asked.append(("literal", text))
        return {"status": "Invalid"}

    responder = LocalResponder201(
        None,  # type: ignore[arg-type]  # payload() touches no store
        heartbeat_interval=60,
        decide=by_uid,
        decide_start=by_uid,
        decide_literal=literal,
        decide_start_literal=literal,
        now=lambda: "2026-12-07T10:00:00Z",
    )

    def authorize(kind: str) -> Any:
        call = Call("1", "Authorize", {"idToken": {"idToken": "D2C93AE4", "type": kind}}, "")
        answer = responder.payload("CP1", call)
        assert answer is not None
        return answer["idTokenInfo"]["status"]

    assert authorize("ISO14443") == "Accepted"
    for kind in ("Central", "eMAID", "KeyCode", "Local", "MacAddress"):
        assert authorize(kind) == "Invalid", kind
    assert asked == [("uid", "D2C93AE4")] + [("literal", "D2C93AE4")] * 5
    event = {
        "eventType": "Started",
        "idToken": {"idToken": "D2C93AE4", "type": "Central"},
    }
    answer = responder.payload("CP1", Call("2", "TransactionEvent", event, ""))
    assert answer == {"idTokenInfo": {"status": "Invalid"}}


async def test_offline_a_central_token_shaped_like_a_reversed_uid_is_not_that_card(
    make_gateway: GatewayFactory,
) -> None:
    from edgegw.sim.charger201 import SimCharger201
    from tests.conftest import gateway_url

    gateway = await make_gateway(chargers=[{"id": "CS201", "idtag_format": "auto"}])
    assert gateway.authorizer is not None
    await gateway.authorizer.add_card(Card(ALICE, owner="Alice"))
    reversed_tag = render(ALICE, F.HEX_REVERSED)
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        as_card = await cs.authorize(reversed_tag, "ISO14443")
        assert as_card["idTokenInfo"]["status"] == "Accepted"
        as_token = await cs.authorize(reversed_tag, "Central")
        assert as_token["idTokenInfo"]["status"] == "Invalid"
        _, started = await cs.start(1, reversed_tag, "eMAID")
        assert started["idTokenInfo"]["status"] == "Invalid"
