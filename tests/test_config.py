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


# ------------------------------------------------------------------ security profiles and limits


def tls_files(tmp_path: Path) -> dict[str, str]:
    """Placeholder PEM files: the config checks that they exist; TLS tests load real ones."""
    files = {}
    for key in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
        path = tmp_path / f"{key}.pem"
        path.write_text("-----BEGIN PLACEHOLDER-----\n")
        files[key] = str(path)
    return files


def problems_of(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def test_security_defaults_keep_existing_sites_working() -> None:
    cfg = parse_config({"chargers": [{"id": "CP1"}]})
    assert cfg.server.security_profile == 1 and not cfg.server.tls_enabled
    assert cfg.security_profile("CP1") == 1 and cfg.security_profile("UNKNOWN") == 1
    assert cfg.server.allowed_networks == []
    assert cfg.server.max_message_size == 65536
    assert cfg.cloud_profile("CP1") == 0


def test_server_profiles_need_their_files(tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    assert any(
        "security_profile 2 needs tls_cert_file" in p
        for p in problems_of({"server": {"security_profile": 2}})
    )
    no_ca = {k: v for k, v in files.items() if k != "tls_client_ca_file"}
    assert any(
        "security_profile 3 needs tls_client_ca_file" in p
        for p in problems_of({"server": {"security_profile": 3, **no_ca}})
    )
    assert any(
        "tls_port is for a profile-1 site" in p
        for p in problems_of({"server": {"security_profile": 2, "tls_port": 9443, **files}})
    )
    assert any(
        "does not exist" in p and p.startswith("server.tls_cert_file")
        for p in problems_of({"server": {**files, "tls_cert_file": str(tmp_path / "nope.pem")}})
    )
    cfg = parse_config({"server": {"security_profile": 3, **files}})
    assert cfg.server.tls_enabled and cfg.security_profile("anyone") == 3


def test_a_charger_profile_is_raised_never_lowered(tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    stored = hash_password("x" * 16, log2_n=4)
    problems = problems_of(
        {
            "server": {"security_profile": 2, **files},
            "chargers": [
                {"id": "CP1", "password_hash": stored, "security_profile": 1},
                {"id": "CP2"},
            ],
        }
    )
    assert problems == [
        "chargers[0].security_profile: 1 is below the site's server.security_profile 2; "
        "a charger's profile may only be raised",
        "chargers[1].password_hash: security profile 2 authenticates the charger with its "
        "Basic-auth password; set one ('edgegw password-hash')",
    ]
    # A profile-1 site with a raised charger needs the TLS listener.
    problems = problems_of({"chargers": [{"id": "CP1", "security_profile": 3}]})
    assert any("profile 3 needs TLS: set server.tls_port" in p for p in problems)
    cfg = parse_config(
        {
            "server": {"tls_port": 9443, **files},
            "chargers": [{"id": "OLD"}, {"id": "NEW", "security_profile": 3}],
        }
    )
    assert (cfg.security_profile("OLD"), cfg.security_profile("NEW")) == (1, 3)


def test_cloud_profiles(tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    cert = {"tls_cert_file": files["tls_cert_file"], "tls_key_file": files["tls_key_file"]}
    wss = "wss://csms.example.com/ocpp"
    assert parse_config({"cloud": {"url": wss}}).cloud_profile("CP1") == 2
    assert parse_config({"cloud": {"url": wss, **cert}}).cloud_profile("CP1") == 3
    per_charger = parse_config(
        {
            "cloud": {"url": wss},
            "chargers": [
                {
                    "id": "CP1",
                    "cloud_tls_cert_file": files["tls_cert_file"],
                    "cloud_tls_key_file": files["tls_key_file"],
                },
                {"id": "CP2"},
            ],
        }
    )
    assert (per_charger.cloud_profile("CP1"), per_charger.cloud_profile("CP2")) == (3, 2)
    assert any(
        "security_profile 2 needs a wss:// url" in p and "never falls back" in p
        for p in problems_of({"cloud": {"url": "ws://csms/ocpp", "security_profile": 2}})
    )
    assert any(
        "3 needs cloud.tls_cert_file, or cloud_tls_cert_file on every charger (missing: CP1)" in p
        for p in problems_of(
            {"cloud": {"url": wss, "security_profile": 3}, "chargers": [{"id": "CP1"}]}
        )
    )
    assert any(
        "must not contain user:password" in p
        for p in problems_of({"cloud": {"url": "wss://u:secret@csms/ocpp"}})
    )


def test_tls_chargers_are_not_relayed_over_plain_ws(tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    stored = hash_password("x" * 16, log2_n=4)
    data: dict[str, object] = {
        "server": {"security_profile": 2, **files},
        "cloud": {"url": "ws://csms.example.com/ocpp"},
        "chargers": [{"id": "CP1", "password_hash": stored}],
    }
    assert any("ws:// would carry chargers that use TLS" in p for p in problems_of(data))
    data["cloud"] = {"url": "ws://csms.example.com/ocpp", "security_profile": 1}  # a VPN
    assert parse_config(data).cloud_profile("CP1") == 1


def test_key_files_from_systemd_credentials(tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "gateway-key").write_text("-----BEGIN PLACEHOLDER-----\n")
    data = {
        "server": {
            "security_profile": 2,
            "tls_cert_file": files["tls_cert_file"],
            "tls_key_file": {"credential": "gateway-key"},
        }
    }
    cfg = parse_config(data, credentials_directory=str(creds))
    assert cfg.server.tls_key_file == creds / "gateway-key"
    data["server"]["tls_key_file"] = {"credential": "missing"}
    with pytest.raises(ConfigError, match=r"server.tls_key_file: .*missing does not exist"):
        parse_config(data, credentials_directory=str(creds))


def test_limits_and_allowed_networks() -> None:
    cfg = parse_config(
        {"server": {"allowed_networks": ["10.0.0.0/8", "fd00::/8"], "max_messages_per_second": 0}}
    )
    assert [str(n) for n in cfg.server.allowed_networks] == ["10.0.0.0/8", "fd00::/8"]
    assert cfg.server.max_messages_per_second == 0
    problems = problems_of({"server": {"allowed_networks": ["10.0.0.0/8", "10.0.0.1/8"]}})
    assert problems == [
        "server.allowed_networks: '10.0.0.1/8' is not a network like '10.0.0.0/8' or "
        "'fd00::/8' (10.0.0.1/8 has host bits set)"
    ]
    assert problems_of({"server": {"max_connections_per_address": 0}})[0].startswith(
        "server.max_connections_per_address"
    )


def test_readable_config_with_inline_secrets_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, '[[chargers]]\nid = "CP1"\ncloud_password = "inline-secret"\n')
    path.chmod(0o644)
    with caplog.at_level("WARNING", logger="edgegw.config"):
        load_config(path)
    assert "chargers[0].cloud_password" in caplog.text and "0644" in caplog.text
    assert "inline-secret" not in caplog.text
    caplog.clear()
    path.chmod(0o640)
    with caplog.at_level("WARNING", logger="edgegw.config"):
        load_config(path)
    assert caplog.text == ""


# -- a single-phase site ([site] phases = 1) ------------------------------------------------

SINGLE_PHASE_SITE = {"limit_a": 40, "phases": 1}
SITE_METER = {
    "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
    "meters": [{"profile": "eastron-sdm120"}],
}


def test_a_single_phase_site_takes_chargers_wired_to_l1() -> None:
    cfg = parse_config(
        {
            "site": SINGLE_PHASE_SITE,
            "chargers": [{"id": "CP1", "phases": "L1"}, {"id": "CP2", "phases": "L1"}],
            **SITE_METER,
        }
    )
    assert cfg.site is not None and cfg.site.phases == 1
    three = parse_config({"site": {"limit_a": 40}, **SITE_METER}).site
    assert three is not None and three.phases == 3


def test_a_single_phase_site_refuses_chargers_on_l2_l3_naming_the_key() -> None:
    problems = problems_of(
        {
            "site": SINGLE_PHASE_SITE,
            "chargers": [
                {"id": "CP1"},
                {"id": "CP2", "phases": "L2"},
                {"id": "CP3", "phases": "L1"},
            ],
        }
    )
    assert any(
        p.startswith("chargers[0].phases: ") and "'L1L2L3' (the default)" in p for p in problems
    )
    assert any(p.startswith("chargers[1].phases: ") and "'L2'" in p for p in problems)
    assert not any(p.startswith("chargers[2]") for p in problems)
    assert all('phases = "L1"' in p for p in problems if p.startswith("chargers["))


@pytest.mark.parametrize("key", ["limit_a", "fallback_ev_a"])
def test_a_single_phase_site_has_one_limit_not_three(key: str) -> None:
    site = {**SINGLE_PHASE_SITE, key: [20, 20, 20]}
    if key == "fallback_ev_a":
        site["limit_a"] = 40
    problems = problems_of({"site": site})
    assert any(p.startswith(f"site.{key}: ") and "one number" in p for p in problems), problems


def test_a_site_has_one_or_three_phases() -> None:
    problems = problems_of({"site": {"limit_a": 40, "phases": 2}})
    assert any(p.startswith("site.phases: ") for p in problems), problems


# -- circuits ([[circuits]]: distribution boards below the site) ----------------------------

THREE_PHASE_SITE = {"site": {"limit_a": 250}, **SITE_METER}
BOARDS = [
    {"name": "level-1", "limit_a": 100},
    {"name": "level-2", "limit_a": [100, 100, 80], "margin_a": 1},
    {"name": "row-A", "limit_a": 63, "parent": "level-2"},
]


def test_circuits_with_parents_and_chargers_on_them() -> None:
    cfg = parse_config(
        {
            **THREE_PHASE_SITE,
            "circuits": BOARDS,
            "chargers": [{"id": "CP1", "circuit": "row-A"}, {"id": "CP2"}],
        }
    )
    assert [(c.name, c.parent, c.limits()) for c in cfg.circuits] == [
        ("level-1", None, (100.0, 100.0, 100.0)),
        ("level-2", None, (100.0, 100.0, 80.0)),
        ("row-A", "level-2", (63.0, 63.0, 63.0)),
    ]
    assert cfg.site is not None
    assert [c.margin(cfg.site) for c in cfg.circuits] == [2.0, 1.0, 2.0]  # the site's default
    assert [c.circuit for c in cfg.chargers] == ["row-A", None]
    assert parse_config(THREE_PHASE_SITE).circuits == []  # no circuits: the site alone


def test_broken_circuits_are_refused_naming_the_key() -> None:
    problems = problems_of(
        {
            **THREE_PHASE_SITE,
            "circuits": [
                {"name": "A", "limit_a": 100},
                {"name": "A", "limit_a": 50},
                {"name": "B", "limit_a": 50, "parent": "nowhere"},
                {"name": "C", "limit_a": 50, "parent": "D"},
                {"name": "D", "limit_a": 50, "parent": "C"},
                {"name": "E", "limit_a": [50, 120, 50], "parent": "A"},
                {"name": "F", "limit_a": 300},
                {"name": "G", "limit_a": 1.5},
            ],
            "chargers": [{"id": "CP1", "circuit": "Z"}],
        }
    )
    expected = [
        "circuits[1].name: circuit 'A' is listed twice",
        "circuits[2].parent: no circuit named 'nowhere' (defined: A, B, C, D, E, F, G)",
        "circuits[3].parent: the circuits form a cycle: C -> D -> C",
        "circuits[4].parent: the circuits form a cycle: D -> C -> D",
        "circuits[5].limit_a: 120 A on L2 is above circuit 'A' (100 A)",
        "circuits[6].limit_a: 300 A on L1 is above the site's limit_a (250 A)",
        "circuits[7].margin_a: the site's margin_a (2 A) it inherits is not below its limit_a",
        "chargers[0].circuit: no circuit named 'Z' (defined: A, B, C, D, E, F, G)",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)
    assert len(problems) == len(expected), problems


def test_a_circuit_needs_a_site_and_one_number_on_a_single_phase_site() -> None:
    problems = problems_of({"circuits": [{"name": "A", "limit_a": 10}]})
    assert "circuits: circuits need a [site] section (load capping)" in problems
    problems = problems_of(
        {
            "site": SINGLE_PHASE_SITE,
            **SITE_METER,
            "circuits": [{"name": "A", "limit_a": [20, 20, 20]}],
        }
    )
    assert any(p.startswith("circuits[0].limit_a: ") and "one number" in p for p in problems)


def test_a_circuit_problem_is_listed_next_to_problems_in_other_sections() -> None:
    problems = problems_of(
        {
            **THREE_PHASE_SITE,
            "server": {"port": 70000},
            "circuits": [{"name": "A", "limit_a": 50, "parent": "B"}],
        }
    )
    assert any(p.startswith("server.port") for p in problems)
    assert any(p.startswith("circuits[0].parent: no circuit named 'B'") for p in problems)


def test_the_safe_currents_under_a_circuit_fit_its_limit() -> None:
    """Chargers keep their safe profile (fallback_current_a) when the gateway is gone: under a
    board (and the boards above it) they must fit its limit - margin, as at the site."""
    chargers = [
        {"id": f"CP{i}", "circuit": "row", "fallback_current_a": 10, "phases": "L1"}
        for i in range(3)
    ]
    circuits = [
        {"name": "level", "limit_a": 40, "margin_a": 0},
        {"name": "row", "limit_a": 32, "margin_a": 3, "parent": "level"},
    ]
    problems = problems_of({**THREE_PHASE_SITE, "circuits": circuits, "chargers": chargers})
    assert problems == [
        "circuits[1]: the fallback_current_a of the chargers under it adds up to 30 A on L1, "
        "above its limit_a - margin_a (29 A): its fuse could trip while the chargers run on "
        "their safe profile"
    ]
    circuits[1]["margin_a"] = 2
    assert parse_config({**THREE_PHASE_SITE, "circuits": circuits, "chargers": chargers})
    chargers.append({"id": "CP9", "circuit": "level", "fallback_current_a": 11, "phases": "L1"})
    problems = problems_of({**THREE_PHASE_SITE, "circuits": circuits, "chargers": chargers})
    assert [p.split(":")[0] for p in problems] == ["circuits[0]"]
    assert "41 A on L1" in problems[0]
