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
