"""A hex-shaped KeyCode on the cloud's 2.0.1 list is no card (a reviewer's repro, R5).

The cloud's 2.0.1 local list holds a KeyCode (a PIN typed on the station's keypad)
that happens to be hex-shaped, "12345678". The gateway mirrored it as a 1.6 idTag, where it
read as a 4-byte card UID: it pushed the station an ISO14443 entry in the station's UID
format ("78563412", hex_reversed) and, offline, accepted an RFID card whose UID is 12345678
(presented as ISO14443 "78563412") on that KeyCode entry. The cloud granted a keypad code,
never a card. Now the station gets the KeyCode back as a KeyCode and only the code opens.
Real gateway, real sockets (cloud: the ocpp library's v201)."""

from __future__ import annotations

import asyncio

from ocpp.v201 import call as call201

from edgegw.auth.cardid import CardId
from edgegw.auth.cardinfo import Card
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_lists201 import CHARGERS, UID, StationList, station
from tests.v201.test_offline201 import _cloud_server, _stop
from tests.v201.test_relay201 import Cloud201

PIN = "12345678"


async def test_a_hex_shaped_keycode_is_no_card(make_gateway: GatewayFactory) -> None:
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
        await pusher.wait_idle("CS201")
        csms = await cloud.station("CS201")
        answer = await csms.call(
            call201.SendLocalList(
                version_number=3,
                update_type="Full",
                local_authorization_list=[
                    {
                        "id_token": {"id_token": PIN, "type": "KeyCode"},
                        "id_token_info": {"status": "Accepted"},
                    }
                ],
            )
        )
        assert answer.status == "Accepted"
        await asyncio.sleep(0)
        await pusher.wait_idle("CS201")
        assert held.statuses() == {
            f"{bytes.fromhex(UID)[::-1].hex().upper()}/ISO14443": "Accepted",  # the site's card
            f"{PIN}/KeyCode": "Accepted",  # its own type, its own text
        }
        await _stop(server)
        card = await cs.authorize("78563412", "ISO14443")  # an RFID card, UID 12345678
        other = await cs.authorize("44332211", "ISO14443")  # control: an unknown card
        assert other["idTokenInfo"]["status"] == "Invalid", other
        pin = await cs.authorize(PIN, "KeyCode")
        assert pin["idTokenInfo"]["status"] == "Accepted"
        assert "78563412/ISO14443" not in held.statuses(), held.statuses()
        assert card["idTokenInfo"]["status"] != "Accepted", card
    finally:
        await cs.close()
        await _stop(server)
