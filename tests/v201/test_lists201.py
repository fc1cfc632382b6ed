"""Local lists in OCPP 2.0.1 form (issue 23): the cloud's 2.0.1 list mirrored into the card
layers and used offline, and a 2.0.1 station's own list pushed in 2.0.1 form, every message
checked against the ``ocpp`` library's v201 schemas. Real sockets on port 0; the cloud is the
library's v201 CSMS (tests.v201.test_relay201)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from ocpp.messages import get_validator
from ocpp.v201 import call as call201

from edgegw.auth.cardid import CardId
from edgegw.auth.cardindex import LiteralToken
from edgegw.auth.cardinfo import AuthStatus, Card
from edgegw.auth.cloudlist import CloudList
from edgegw.auth.cloudlist201 import answer_in_201, request_in_16
from edgegw.auth.listpush201 import chunks, json_size, read_capabilities
from edgegw.sim.charger201 import SimCharger201
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_offline201 import _cloud_server, _stop
from tests.v201.test_relay201 import Cloud201

JsonDict = dict[str, Any]

UID = "04A1B2C3D4E5F6"
REVERSED = bytes.fromhex(UID)[::-1].hex().upper()  # as the station writes it (hex_reversed)
CLOUD_UID = "E43AC9D2"
EMAID = "DEABC1234567890"
AWAY = "04C1C2C3C4C5C6"  # the cloud says NotAtThisLocation
CHARGERS = [{"id": "CS201", "idtag_format": "hex_reversed"}]


def valid(kind: int, action: str, payload: JsonDict) -> JsonDict:
    """``payload`` checked against the library's 2.0.1 schema (2: request, 3: response)."""
    get_validator(kind, action, "2.0.1").validate(payload)
    return payload


def auth_data(token: str, kind: str, status: str | None) -> JsonDict:
    entry: JsonDict = {"idToken": {"idToken": token, "type": kind}}
    if status is not None:
        entry["idTokenInfo"] = {"status": status}
    return entry


def plan201(mirror: CloudList, payload: JsonDict) -> tuple[JsonDict, list[str]]:
    request, left_out = request_in_16(valid(2, "SendLocalList", payload))
    update = mirror.plan(request)
    mirror.commit(update)
    return valid(3, "SendLocalList", answer_in_201("SendLocalList", update.answer())), left_out


def test_the_clouds_201_list_is_read_into_the_one_mirror() -> None:
    mirror = CloudList()
    answer, left_out = plan201(
        mirror,
        {
            "versionNumber": 5,
            "updateType": "Full",
            "localAuthorizationList": [
                auth_data(CLOUD_UID.lower(), "ISO14443", "Accepted"),  # a UID, in any case
                {
                    "idToken": {"idToken": EMAID, "type": "eMAID"},
                    "idTokenInfo": {
                        "status": "Blocked",
                        "cacheExpiryDateTime": "2027-01-01T00:00:00Z",
                        "groupIdToken": {"idToken": "FLEET-1", "type": "Central"},
                    },
                },
                auth_data(AWAY, "ISO14443", "NotAtThisLocation"),
                auth_data("X" * 25, "Central", "Accepted"),  # 2.0.1 allows 36, idTags 20
                auth_data("", "NoAuthorization", "Accepted"),
            ],
        },
    )
    assert answer == {"status": "Accepted"}
    assert len(left_out) == 2 and "25 characters" in left_out[0]
    assert mirror.version == 5
    card = mirror.get(CardId.from_uid(bytes.fromhex(CLOUD_UID)).key)
    assert card is not None and card.card.is_uid and card.info.status is AuthStatus.ACCEPTED
    emaid = mirror.get(EMAID)
    assert emaid is not None and emaid.card.is_token
    assert isinstance(emaid.card, LiteralToken) and emaid.card.kind == "eMAID"
    assert emaid.info.status is AuthStatus.BLOCKED and emaid.info.parent_id == "FLEET-1"
    assert emaid.info.expiry is not None and emaid.info.expiry.year == 2027
    away = mirror.get(AWAY)
    assert away is not None and away.info.status is AuthStatus.INVALID  # still a refusal
    # Differential: the eMAID leaves, a card arrives; the same version again with a change is
    # refused in 2.0.1 words, and a repeat of the current update is Accepted (as for 1.6).
    diff = {
        "versionNumber": 6,
        "updateType": "Differential",
        "localAuthorizationList": [
            auth_data(EMAID, "eMAID", None),
            auth_data(UID, "ISO14443", "Accepted"),
        ],
    }
    assert plan201(mirror, diff)[0] == {"status": "Accepted"}
    assert mirror.get(EMAID) is None and mirror.get(UID) is not None and mirror.version == 6
    assert plan201(mirror, diff)[0] == {"status": "Accepted"}
    stale = {
        **diff,
        "localAuthorizationList": [auth_data("04D1D2D3D4D5D6", "ISO14443", "Accepted")],
    }
    assert plan201(mirror, stale)[0] == {"status": "VersionMismatch"}
    assert plan201(mirror, {"versionNumber": 7, "updateType": "Full"})[0] == {"status": "Accepted"}
    assert len(mirror) == 0
    version = answer_in_201("GetLocalListVersion", {"listVersion": mirror.version})
    assert valid(3, "GetLocalListVersion", version) == {"versionNumber": 7}


def test_capabilities_and_messages_of_a_201_station() -> None:
    def result(variable: str, value: str | None, status: str = "Accepted") -> JsonDict:
        item: JsonDict = {
            "attributeStatus": status,
            "component": {"name": "LocalAuthListCtrlr"},
            "variable": {"name": variable},
        }
        if value is not None:
            item["attributeValue"] = value
        return item

    caps = read_capabilities(
        valid(
            3,
            "GetVariables",
            {
                "getVariableResult": [
                    result("Available", "true"),
                    result("Enabled", "true"),
                    result("Entries", "3"),
                    result("ItemsPerMessage", "50"),
                    result("BytesPerMessage", "400"),
                ]
            },
        )
    )
    assert (caps.supported, caps.items_max, caps.bytes_max, caps.entries) == (True, 50, 400, 3)
    off = read_capabilities({"getVariableResult": [result("Enabled", "false")]})
    assert not off.supported and "Enabled is false" in off.reason
    none = read_capabilities(
        {"getVariableResult": [result(v, None, "UnknownComponent") for v in ("Enabled", "Entries")]}
    )
    assert not none.supported and "no LocalAuthListCtrlr" in none.reason
    items = [auth_data(f"{i:08X}", "ISO14443", "Accepted") for i in range(1, 30)]
    cut = chunks(items, 50, 400, json_size)
    assert [item for part in cut for item in part] == items and len(cut) > 1
    for part in cut:  # each message, framed as the gateway frames it, within BytesPerMessage
        payload = {"versionNumber": 2**31 - 1, "updateType": "Differential"}
        payload["localAuthorizationList"] = part
        frame = json.dumps([2, "x" * 36, "SendLocalList", payload], separators=(",", ":"))
        assert len(frame) <= 400


class StationList:
    """A 2.0.1 station's local list (D01/D02): every request checked against the schema;
    ``refuse`` holds the statuses to answer the next SendLocalLists with instead."""

    def __init__(self) -> None:
        self.version = 0
        self.entries: dict[tuple[str, str], JsonDict] = {}
        self.requests: list[JsonDict] = []
        self.refuse: list[str] = []

    def send(self, payload: JsonDict) -> JsonDict:
        self.requests.append(valid(2, "SendLocalList", payload))
        if self.refuse:
            return valid(3, "SendLocalList", {"status": self.refuse.pop(0)})
        if payload["updateType"] == "Full":
            self.entries = {}
        for item in payload.get("localAuthorizationList", []):
            key = (item["idToken"]["idToken"].upper(), item["idToken"]["type"])
            if "idTokenInfo" in item:
                self.entries[key] = item["idTokenInfo"]
            else:
                self.entries.pop(key, None)
        self.version = payload["versionNumber"]
        return valid(3, "SendLocalList", {"status": "Accepted"})

    def get_version(self, payload: JsonDict) -> JsonDict:
        valid(2, "GetLocalListVersion", payload)
        return valid(3, "GetLocalListVersion", {"versionNumber": self.version})

    def statuses(self) -> dict[str, str]:
        return {f"{token}/{kind}": info["status"] for (token, kind), info in self.entries.items()}


def station(url: str, held: StationList, items_per_message: str = "2") -> SimCharger201:
    handlers: dict[str, Callable[[JsonDict], JsonDict]] = {
        "SendLocalList": held.send,
        "GetLocalListVersion": held.get_version,
    }
    variables = {
        ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
        ("LocalAuthListCtrlr", "Available"): "true",
        ("LocalAuthListCtrlr", "Enabled"): "true",
        ("LocalAuthListCtrlr", "Entries"): "0",
        ("LocalAuthListCtrlr", "ItemsPerMessage"): items_per_message,
        ("LocalAuthListCtrlr", "BytesPerMessage"): "4096",
    }
    return SimCharger201("CS201", url, handlers=handlers, variables=variables)


async def test_a_201_station_gets_the_sites_list_and_the_clouds_which_serves_offline(
    make_gateway: GatewayFactory,
) -> None:
    cloud = Cloud201()
    server, _ = await _cloud_server(cloud)
    gateway = await make_gateway(
        cloud_url=cloud.url, chargers=CHARGERS, auth={"push_local_list": True}
    )
    authorizer, pusher = gateway.authorizer, gateway.list_pusher
    assert authorizer is not None and pusher is not None
    await authorizer.add_card(Card(CardId.from_uid(bytes.fromhex(UID)), owner="tenant"))
    held = StationList()
    cs = station(gateway_url(gateway), held)
    await cs.connect()
    try:
        await cs.boot()
        status = await pusher.wait_idle("CS201")
        assert status.capabilities is not None and status.capabilities.supported
        assert status.capabilities.send_max == 2 and status.capabilities.bytes_max == 4096
        assert held.statuses() == {f"{REVERSED}/ISO14443": "Accepted"}  # in its format
        csms = await cloud.station("CS201")
        answer = await csms.call(
            call201.SendLocalList(
                version_number=12,
                update_type="Full",
                local_authorization_list=[
                    {
                        "id_token": {"id_token": CLOUD_UID, "type": "ISO14443"},
                        "id_token_info": {"status": "Accepted"},
                    },
                    {
                        "id_token": {"id_token": EMAID, "type": "eMAID"},
                        "id_token_info": {"status": "Accepted"},
                    },
                    {
                        "id_token": {"id_token": AWAY, "type": "ISO14443"},
                        "id_token_info": {"status": "NotAtThisLocation"},
                    },
                ],
            )
        )
        assert answer.status == "Accepted"
        assert (await csms.call(call201.GetLocalListVersion())).version_number == 12
        calls = [json.loads(t) for t in cs.received if json.loads(t)[0] == 2]
        assert all(c[1].startswith("edgegw-") for c in calls)  # the gateway's own, none relayed
        await asyncio.sleep(0)  # the change reaches the pusher's worker
        status = await pusher.wait_idle("CS201")
        assert status.synced and status.last_error is None
        reversed_cloud = bytes.fromhex(CLOUD_UID)[::-1].hex().upper()
        assert held.statuses() == {
            f"{REVERSED}/ISO14443": "Accepted",
            f"{reversed_cloud}/ISO14443": "Accepted",
            f"{EMAID}/eMAID": "Accepted",  # its own type
            f"{bytes.fromhex(AWAY)[::-1].hex().upper()}/ISO14443": "Invalid",
        }
        assert all(len(r.get("localAuthorizationList", [])) <= 2 for r in held.requests)
        # The cloud goes: the station stays and its cards are decided from the cloud's list.
        await _stop(server)
        assert (await cs.authorize(reversed_cloud))["idTokenInfo"]["status"] == "Accepted"
        assert (await cs.authorize(EMAID, "eMAID"))["idTokenInfo"]["status"] == "Accepted"
        away = await cs.authorize(bytes.fromhex(AWAY)[::-1].hex().upper())
        assert away["idTokenInfo"]["status"] == "Invalid"
    finally:
        await cs.close()
        await _stop(server)


async def test_a_201_station_refusing_its_list_is_handled_as_a_16_charger(
    make_gateway: GatewayFactory,
) -> None:
    """A Differential answered VersionMismatch is followed by a Full; a Full answered Failed is
    reported and the next change sends a Full again."""
    gateway = await make_gateway(chargers=CHARGERS, auth={"push_local_list": True})
    authorizer, pusher = gateway.authorizer, gateway.list_pusher
    assert authorizer is not None and pusher is not None
    await authorizer.add_card(Card(CardId.from_uid(bytes.fromhex(UID))))
    held = StationList()
    cs = station(gateway_url(gateway), held, items_per_message="10")
    await cs.connect()
    try:
        await cs.boot()
        await pusher.wait_idle("CS201")
        assert [r["updateType"] for r in held.requests] == ["Full"]
        held.refuse = ["VersionMismatch", "Failed"]
        await authorizer.add_card(Card(CardId.from_uid(bytes.fromhex(CLOUD_UID))))
        status = await pusher.wait_idle("CS201")
        assert [r["updateType"] for r in held.requests] == ["Full", "Differential", "Full"]
        assert status.last_error == "SendLocalList answered Failed" and not status.synced
        await authorizer.add_card(Card(CardId.from_token(EMAID)))
        status = await pusher.wait_idle("CS201")
        assert held.requests[-1]["updateType"] == "Full" and status.synced
        assert set(held.statuses()) == {
            f"{REVERSED}/ISO14443",
            f"{bytes.fromhex(CLOUD_UID)[::-1].hex().upper()}/ISO14443",
            f"{EMAID}/Central",
        }
        assert held.version == held.requests[-1]["versionNumber"]
    finally:
        await cs.close()
