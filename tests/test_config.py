from pathlib import Path

import pytest

from edgegw.auth.passwords import hash_password
from edgegw.config import ConfigError, load_config, parse_config

PUBLIC_INTERFACE = """
[server]
host = "0.0.0.0"
port = 9000
path = "/ocpp"
allow_unknown_chargers = false

[cloud]
url = "wss://csms.example.com/ocpp"

[store]
path = "/var/lib/edgegw/edgegw.db"

[[chargers]]
id = "CP001"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgegw.toml"
    path.write_text(text)
    return path


def test_public_interface_keys_work_as_written(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, PUBLIC_INTERFACE))
    assert (cfg.server.host, cfg.server.port, cfg.server.path) == ("0.0.0.0", 9000, "/ocpp")
    assert cfg.server.allow_unknown_chargers is False
    assert cfg.cloud is not None and cfg.cloud.url == "wss://csms.example.com/ocpp"
    assert cfg.store.path == Path("/var/lib/edgegw/edgegw.db")
    assert [c.id for c in cfg.chargers] == ["CP001"]


def test_standalone_when_cloud_omitted() -> None:
    assert parse_config({}).cloud is None


def test_every_problem_listed_with_key_path(tmp_path: Path) -> None:
    text = """
[server]
port = 70000
colour = "blue"

[cloud]
url = "http://csms.example.com"

[[chargers]]
id = "CP:1"

[[chargers]]
id = "CP2"
password_hash = "hunter2"
"""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    problems = info.value.problems
    assert any(p.startswith("server.port:") and "65535" in p for p in problems)
    assert any(p.startswith("server.colour: unknown key") for p in problems)
    assert any(p.startswith("cloud.url:") and "ws://" in p for p in problems)
    assert any(p.startswith("chargers[0].id:") for p in problems)
    assert any(p.startswith("chargers[1].password_hash:") for p in problems)
    assert len(problems) == 5
    assert "edgegw.toml" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server\nport = 1", "TOML syntax error"),
        ('[[chargers]]\nid = "A"\n[[chargers]]\nid = "a"', "listed twice"),
        ('[cloud]\nurl = "ws://x/ocpp"\nca_file = "/nonexistent.pem"', "ca_file is only used"),
        ('[server]\npath = "ocpp"', "must start with '/'"),
        ('[auth]\nunknown_cards = "maybe"', "auth.unknown_cards"),
        ("[cloud]", "cloud.url: required key is missing"),
    ],
)
def test_broken_configs(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert expected in str(info.value)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="edgegw init"):
        load_config(tmp_path / "nope.toml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


def test_secrets_from_file_and_credentials(tmp_path: Path) -> None:
    (tmp_path / "cp1.secret").write_text("s3cret-from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "cp2-cloud").write_text("s3cret-credential")
    text = f"""
[[chargers]]
id = "CP1"
cloud_password = {{ file = "{tmp_path / "cp1.secret"}" }}

[[chargers]]
id = "CP2"
cloud_password = {{ credential = "cp2-cloud" }}

[[chargers]]
id = "CP3"
cloud_password = "inline"
"""
    cfg = load_config(write(tmp_path, text), credentials_directory=str(creds))
    secrets = [c.cloud_password.get_secret_value() for c in cfg.chargers if c.cloud_password]
    assert secrets == ["s3cret-from-file", "s3cret-credential", "inline"]
    # Secrets never show in the model's text form.
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg)


def test_secret_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    text = """
[[chargers]]
id = "CP1"
cloud_password = { credential = "x" }

[[chargers]]
id = "CP2"
cloud_password = { file = "/nonexistent/secret" }

[[chargers]]
id = "CP3"
cloud_password = { path = "/x" }
"""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    text_out = str(info.value)
    assert (
        "chargers[0].cloud_password: credential 'x' requested but $CREDENTIALS_DIRECTORY"
        in text_out
    )
    assert "chargers[1].cloud_password: cannot read secret from /nonexistent/secret" in text_out
    assert "chargers[2].cloud_password: must be a string" in text_out


def test_password_hash_accepted() -> None:
    cfg = parse_config({"chargers": [{"id": "CP1", "password_hash": hash_password("x" * 16)}]})
    assert cfg.chargers[0].password_hash is not None
