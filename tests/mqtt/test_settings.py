"""The [mqtt] section: defaults, clear errors, and a password that is never shown."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edgegw.config import ConfigError, parse_config
from edgegw.telemetry.settings import MqttSecretError, default_node_name


def mqtt(**section: Any) -> Any:
    config = parse_config({"mqtt": {"host": "broker.local", **section}})
    assert config.mqtt is not None
    return config.mqtt


def problems(**section: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"mqtt": {"host": "broker.local", **section}})
    return caught.value.problems


def test_defaults_are_safe_and_name_this_box() -> None:
    config = mqtt()
    node = default_node_name()
    assert config.topic_prefix == f"edgegw/{node}" and config.client_id == f"edgegw-{node}"
    assert config.port == 1883 and config.qos == 1 and config.retain
    assert config.discovery and config.discovery_prefix == "homeassistant"
    assert config.commands_enabled is False and config.publish_cards is False
    assert config.read_password() is None
    assert parse_config({}).mqtt is None  # no section, no MQTT


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"topic_prefix": "site/#"}, "mqtt.topic_prefix: must not contain the MQTT wildcards"),
        ({"topic_prefix": "/site"}, "mqtt.topic_prefix: must be non-empty"),
        ({"topic_prefix": "$SYS/x"}, "reserved for the broker"),
        ({"client_id": "a/b"}, "mqtt.client_id: must not contain '/', '+' or '#'"),
        ({"qos": 3}, "mqtt.qos"),
        ({"port": 0}, "mqtt.port"),
        ({"password_file": "/nonexistent"}, "password_file needs username"),
        ({"username": "u", "password_file": "/nonexistent"}, "does not exist"),
        ({"reconnect_min_delay": 5, "reconnect_max_delay": 1}, "reconnect_max_delay must be"),
        ({"min_interval": 10, "publish_interval": 5}, "publish_interval must be 0 or >="),
        ({"tls": {"cert_file": "/etc/hostname"}}, "mqtt.tls: cert_file and key_file go together"),
        ({"tls": {"ca_file": "/nonexistent.pem"}}, "ca_file /nonexistent.pem does not exist"),
        ({"discovery_prefix": "edgegw/x", "topic_prefix": "edgegw/x"}, "must differ"),
        ({"hostname": "x"}, "mqtt.hostname: unknown key"),
    ],
)
def test_mistakes_are_named(section: dict[str, Any], expected: str) -> None:
    found = problems(**section)
    assert any(expected in p for p in found), found


def test_the_password_is_read_from_its_file_and_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("hunter2\n")
    config = mqtt(username="edgegw", password_file=str(secret))
    password = config.read_password()
    assert password is not None and password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(config) and "hunter2" not in str(password)
    secret.write_text("\n")
    with pytest.raises(MqttSecretError, match="is empty"):
        config.read_password()
    secret.unlink()
    with pytest.raises(MqttSecretError, match="cannot read"):
        config.read_password()


async def test_unusable_certificates_stop_the_start_with_a_clear_error(tmp_path: Path) -> None:
    from edgegw.livestate import LiveState
    from edgegw.telemetry.publisher import MqttPublisher
    from edgegw.telemetry.settings import MqttSetupError

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    config = parse_config(
        {
            "mqtt": {
                "host": "127.0.0.1",
                "tls": {"cert_file": str(garbage), "key_file": str(garbage)},
            }
        }
    )
    live = LiveState(SimpleNamespace(config=config, sessions={}, meters=None, controller=None))
    with pytest.raises(MqttSetupError, match=r"mqtt\.tls: cannot use"):
        MqttPublisher(config, live).start()
