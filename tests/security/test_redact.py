"""Secrets in OCPP frames are masked in what is logged or stored."""

from __future__ import annotations

import json

from edgegw.security.redact import redact_frame


def test_change_configuration_authorization_key_is_masked() -> None:
    raw = json.dumps(
        [2, "c1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": "0011aabbccdd"}]
    )
    out = redact_frame(raw)
    assert "0011aabbccdd" not in out
    assert json.loads(out) == [
        2,
        "c1",
        "ChangeConfiguration",
        {"key": "AuthorizationKey", "value": "***"},
    ]


def test_get_configuration_answer_is_masked_but_other_keys_kept() -> None:
    conf = {
        "configurationKey": [
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
            {"key": "authorizationkey", "readonly": False, "value": "s3cret"},
        ]
    }
    out = json.loads(redact_frame(json.dumps([3, "g1", conf])))
    values = {k["key"]: k["value"] for k in out[2]["configurationKey"]}
    assert values == {"HeartbeatInterval": "300", "authorizationkey": "***"}


def test_frames_without_secrets_are_returned_as_they_are() -> None:
    raw = '[2, "h",  "Heartbeat", {}]'  # odd spacing kept: the same object comes back
    assert redact_frame(raw) is raw
    mention = '[2,"d","DataTransfer",{"vendorId":"v","data":"AuthorizationKey"}]'
    assert redact_frame(mention) == mention
    assert redact_frame("AuthorizationKey not json") == "AuthorizationKey not json"


def test_keys_are_matched_after_json_decoding() -> None:
    escaped = '[2,"c1","ChangeConfiguration",{"k\\u0065y":"Authorization\\u004bey","value":"pw1"}]'
    out = redact_frame(escaped)
    assert "pw1" not in out
    assert json.loads(out)[3] == {"key": "AuthorizationKey", "value": "***"}
    other = '[2,"c1","DataTransfer",{"vendorId":"caf\\u00e9","data":"x"}]'
    assert redact_frame(other) is other  # an escape alone changes nothing


def test_an_unparsable_frame_naming_a_secret_key_is_masked() -> None:
    raw = '[2,"c1","ChangeConfiguration",{"key":"AuthorizationKey","value":"pw2"},' + "9" * 5000
    out = redact_frame(raw)
    assert "pw2" not in out and '"value":"***"' in out
    surrogate = '[3,"g",{"configurationKey":[{"key":"AuthorizationKey","value":"\\ud800"}]}]'
    assert redact_frame(surrogate).isascii()  # nothing a writer cannot encode


def test_a_key_spelled_with_characters_that_fold_to_it_is_masked() -> None:
    # A long s (U+017F) and a Kelvin sign (U+212A) are the same key once case-folded, as the charger
    # may read it; the quick check before decoding must not let such a frame through.
    for key in ("Ba\u017ficAuthPassword", "Authorization\u212aey"):
        raw = json.dumps(
            [2, "c1", "ChangeConfiguration", {"key": key, "value": "pw3"}], ensure_ascii=False
        )
        assert "pw3" not in redact_frame(raw)


def test_every_spelling_of_a_key_is_found_past_the_quick_letter_check() -> None:
    # The quick check lets a frame go when it holds no "b", "B", "z" nor "Z" followed by an "a"
    # or "A": each case of each key's letter must still be caught, also beside the "Z" of a
    # UTC timestamp (which alone says nothing).
    for key in ("AUTHORIZATIONKEY", "authoriZAtionkey", "AuthoriZation", "BASICAUTHPASSWORD"):
        for at in ("2026-01-01T00:00:00Z", "none"):
            raw = json.dumps(
                [3, "g", {"at": at, "configurationKey": [{"key": key, "value": "pw4"}]}]
            )
            assert ("pw4" in redact_frame(raw)) is (key == "AuthoriZation"), (key, at)
    meter = '[2,"m","MeterValues",{"meterValue":[{"timestamp":"2026-01-01T00:00:00Z"}]}]'
    assert redact_frame(meter) is meter
