import json

import pytest

from edgegw.proxy import frames
from edgegw.proxy.frames import Call, CallError, CallResult, FrameError


def test_call_keeps_raw_text() -> None:
    raw = '[2, "abc", "Heartbeat", {}]'
    frame = frames.parse(raw)
    assert frame == Call("abc", "Heartbeat", {}, raw)


def test_result_and_error() -> None:
    assert isinstance(frames.parse('[3,"1",{"a":1}]'), CallResult)
    error = frames.parse('[4,"1","GenericError","boom",{"x":1}]')
    assert isinstance(error, CallError)
    assert (error.code, error.description, error.details) == ("GenericError", "boom", {"x": 1})


@pytest.mark.parametrize(
    ("raw", "code", "message_id", "reply"),
    [
        ("not json", "FormationViolation", "-1", True),
        (b'[2,"1","Heartbeat",{}]', "FormationViolation", "-1", True),
        ('{"a": 1}', "FormationViolation", "-1", True),
        ("[]", "FormationViolation", "-1", True),
        ('[7,"1",{}]', "ProtocolError", "-1", False),
        ('[true,"1",{}]', "ProtocolError", "-1", False),
        ('[2,17,"Heartbeat",{}]', "ProtocolError", "-1", True),
        ('[2,"' + "x" * 37 + '","Heartbeat",{}]', "ProtocolError", "-1", True),
        ('[2,"1","Heartbeat"]', "ProtocolError", "1", True),
        ('[2,"1","Heartbeat",[]]', "ProtocolError", "1", True),
        ('[3,"1"]', "ProtocolError", "1", False),
        ('[4,"1","GenericError"]', "ProtocolError", "1", False),
        ("[" * 100000 + "]" * 100000, "FormationViolation", "-1", True),
    ],
)
def test_malformed(raw: str | bytes, code: str, message_id: str, reply: bool) -> None:
    with pytest.raises(FrameError) as info:
        frames.parse(raw)
    assert (info.value.code, info.value.message_id, info.value.reply) == (code, message_id, reply)


def test_made_frames_round_trip() -> None:
    call = frames.make_call("id1", "Authorize", {"idTag": "ÄBC"})
    assert json.loads(call.raw) == [2, "id1", "Authorize", {"idTag": "ÄBC"}]
    assert frames.parse(call.raw) == call
    error = frames.make_error("id1", "GenericError", "x" * 300)
    assert len(json.loads(error.raw)[3]) == 255
    assert json.loads(error.raw)[4] == {}


@pytest.mark.parametrize(
    ("raw", "code", "message_id", "reply"),
    [
        # Not JSON, though Python's json reads them: refused under the frame's own id.
        ('[2,"n1","SetChargingProfile",{"limit":NaN}]', "FormationViolation", "n1", True),
        ('[2,"n2","X",{"a":[Infinity]}]', "FormationViolation", "n2", True),
        ('[2,"n3","X",{"a":-Infinity}]', "FormationViolation", "n3", True),
        ('[3,"n4",{"a":NaN}]', "FormationViolation", "n4", False),
        # Beyond a double, beyond int64 (SQLite's integers).
        ('[2,"f1","X",{"a":1e400}]', "TypeConstraintViolation", "f1", True),
        ('[2,"i1","X",{"a":9223372036854775808}]', "TypeConstraintViolation", "i1", True),
        ('[2,"i2","X",{"a":-9223372036854775809}]', "TypeConstraintViolation", "i2", True),
        ('[2,"i3","X",{"a":' + "7" * 5000 + "}]", "TypeConstraintViolation", "i3", True),
        (
            '[4,"i4","GenericError","",{"a":99999999999999999999}]',
            "TypeConstraintViolation",
            "i4",
            False,
        ),
        # The id cannot be read: the usual answer.
        ('[2,17,"X",{"a":NaN}]', "ProtocolError", "-1", True),
        ('[2,"t1","X",{"a":NaN', "FormationViolation", "-1", True),
    ],
)
def test_numbers_no_peer_can_hold_are_refused(
    raw: str, code: str, message_id: str, reply: bool
) -> None:
    with pytest.raises(FrameError) as info:
        frames.parse(raw)
    assert (info.value.code, info.value.message_id, info.value.reply) == (code, message_id, reply)
    assert len(info.value.description) < 160  # a huge number is never quoted whole


@pytest.mark.parametrize(
    "number",
    [
        "9223372036854775807",
        "-9223372036854775808",
        "3.4028235E38",
        "1.7976931348623157e308",
        "1e-400",
    ],
)
def test_numbers_at_the_edges_are_kept(number: str) -> None:
    raw = f'[2,"e1","X",{{"a":{number}}}]'
    frame = frames.parse(raw)
    assert frame == Call("e1", "X", {"a": json.loads(number)}, raw)
