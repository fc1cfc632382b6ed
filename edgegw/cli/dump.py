"""``edgegw dump``: everything a support request needs, in one file to attach.

A caretaker on the phone with support should not run ten commands and paste their output.
``edgegw dump`` writes one ``.tar.gz`` (mode 0600) holding:

- ``config.toml``: the configuration file with every secret replaced by ``***`` (passwords,
  password hashes, tokens; references to secret files stay, their contents are not read);
- ``versions.json``: edgegw, Python, the operating system and the libraries that matter;
- ``doctor.txt`` and ``doctor.json``: what ``edgegw doctor`` says about the site;
- ``site.json``: status, chargers, pending identities, wrong URLs, the cloud backlog and the
  load controller's state (what the daemon answers; its store when it is not running);
- ``events.json``: the newest entries of the event journal;
- ``messages.jsonl``: the newest frames of the message log (secrets masked as it keeps them);
- ``journal.txt``: the service's newest log lines (``journalctl -u edgegw``), when readable;
- ``manifest.json``: when, where, and which part could not be collected and why.

One part failing never stops the others: it is named in the manifest instead.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Final

import tomlkit
import typer
from tomlkit.items import AoT, Table

from edgegw import __version__
from edgegw.cli.chargers import _ChargerStore
from edgegw.cli.doctor import Doctor, _line, _summary
from edgegw.cli.messages import _from_daemon, _from_file
from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_FAILURE,
    ConfigOption,
    DaemonClient,
    JsonOption,
    emit,
    fail,
    running_daemon,
)
from edgegw.cli.status import _StatusStore
from edgegw.config import Config, ConfigError, load_config
from edgegw.control.client import ControlClientError, RemoteError

MASK: Final = "***"
SECRET_KEY = re.compile(r"password|secret|token|passphrase|psk|api_?key", re.IGNORECASE)
_SECRET_LINE = re.compile(
    r"^(\s*[\w.\"-]*(?:password|secret|token|passphrase|psk|api_?key)[\w\"-]*\s*=\s*)(\".*\"|'.*')",
    re.IGNORECASE | re.MULTILINE,
)
PACKAGES: Final = (
    "websockets",
    "ocpp",
    "pydantic",
    "pymodbus",
    "aiosqlite",
    "aiomqtt",
    "textual",
    "typer",
    "tomlkit",
    "pyscard",
)
JOURNAL_LINES: Final = 1000


def register(app: typer.Typer) -> None:
    app.command("dump")(dump)


def dump(  # noqa: PLR0917 (typer options)
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="The file to write (default: edgegw-dump-<host>-<time>.tar.gz here).",
        ),
    ] = None,
    events: Annotated[int, typer.Option(help="Newest journal events to include.", min=1)] = 1000,
    frames: Annotated[
        int, typer.Option(help="Newest message-log frames to include.", min=0)
    ] = 5000,
    skip_cloud: Annotated[
        bool, typer.Option("--skip-cloud", help="Doctor: do not connect to the cloud.")
    ] = False,
    skip_meters: Annotated[
        bool, typer.Option("--skip-meters", help="Doctor: do not read the meters.")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    as_json: JsonOption = False,
) -> None:
    """Write a support bundle: redacted configuration, versions, doctor, site state, recent
    events and frames, the service log — one file to attach to a support request."""
    now = time.time()
    host = socket.gethostname()
    path = output or Path(
        f"edgegw-dump-{_safe(host)}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}.tar.gz"
    )
    bundle = Bundle()
    bundle.add_text("config.toml", lambda: redact_config(config.read_text(encoding="utf-8")))
    bundle.add_json("versions.json", versions)
    doctor = Doctor(config, skip_cloud=skip_cloud, skip_meters=skip_meters)
    bundle.add_text("doctor.txt", lambda: _doctor_text(doctor))
    bundle.add_json("doctor.json", doctor.report.as_dict)
    try:
        cfg: Config | None = load_config(config)
    except ConfigError as exc:
        cfg = None
        bundle.skipped("site.json", f"the configuration does not load: {exc}")
    if cfg is not None:
        with _Site(cfg) as site:
            bundle.add_json("site.json", site.state)
            bundle.add_json("events.json", lambda: site.ask("events", limit=min(events, 10000)))
            bundle.add_text("messages.jsonl", lambda: site.frames(frames))
    bundle.add_text("journal.txt", service_log)
    bundle.add_json(
        "manifest.json",
        lambda: {
            "edgegw": __version__,
            "host": host,
            "written_at": now,
            "config": str(config),
            "parts": sorted(bundle.parts),
            "not_collected": bundle.problems,
        },
    )
    try:
        bundle.write(path)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}", EXIT_FAILURE, json_mode=as_json)
    result = {
        "ok": True,
        "file": str(path),
        "parts": sorted(bundle.parts),
        "not_collected": bundle.problems,
    }
    emit(result, as_json, _render)


def _render(result: dict[str, Any]) -> str:
    lines = [
        f"Wrote {result['file']} (mode 0600; secrets replaced by {MASK}): "
        + ", ".join(result["parts"])
        + "."
    ]
    lines += [f"  not collected: {name}: {why}" for name, why in result["not_collected"].items()]
    lines.append("Attach it to the support request; look inside with `tar -tzvf FILE`.")
    return "\n".join(lines)


class Bundle:
    """The parts of the dump, collected one by one; a part that fails is noted, not fatal."""

    def __init__(self) -> None:
        self.parts: dict[str, bytes] = {}
        self.problems: dict[str, str] = {}

    def add_text(self, name: str, make: Callable[[], str]) -> None:
        try:
            self.parts[name] = make().encode("utf-8", "backslashreplace")
        except Exception as exc:
            self.skipped(name, f"{type(exc).__name__}: {exc}")

    def add_json(self, name: str, make: Callable[[], Any]) -> None:
        self.add_text(name, lambda: json.dumps(make(), indent=2, default=str) + "\n")

    def skipped(self, name: str, why: str) -> None:
        self.problems[name] = why[:500]

    def write(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            folder = path.name.removesuffix(".tar.gz").removesuffix(".tgz")
            for name, data in sorted(self.parts.items()):
                info = tarfile.TarInfo(f"{folder}/{name}")
                info.size = len(data)
                info.mtime = int(time.time())
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(data))


class _Site:
    """The daemon's answers, or the same ops on its store when it does not run."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._client: DaemonClient | None = None

    def __enter__(self) -> _Site:
        try:
            self._client = running_daemon(self.config)
        except ControlClientError:
            self._client = None
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    @property
    def source(self) -> str:
        return "daemon" if self._client is not None else "store"

    def ask(self, op: str, **args: Any) -> Any:
        if self._client is not None:
            return self._client.call(op, **args)
        local = _ChargerStore if op.startswith("chargers.") else _StatusStore
        with local(self.config) as store:
            return store.call(op, **args)

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        ops = [
            "chargers.list",
            "chargers.pending",
            "chargers.wrong_urls",
            "sync.status",
            "sync.parked",
        ]
        if self._client is not None:
            ops = ["status", *ops, "live.snapshot", "energy.state", "chargers.overrides"]
        for op in ops:
            try:
                out[op] = self.ask(op)
            except RemoteError as exc:
                out[op] = {"error": exc.code, "message": exc.message}
            except Exception as exc:
                out[op] = {"error": type(exc).__name__, "message": str(exc)[:500]}
        return out

    def frames(self, limit: int) -> str:
        if limit == 0:
            return ""
        if self._client is not None:
            found = _from_daemon(self._client, None, limit)
        else:
            found = _from_file(self.config, None, limit)
        return "".join(json.dumps(f.to_json(), ensure_ascii=True) + "\n" for f in found)


def _doctor_text(doctor: Doctor) -> str:
    report = doctor.run()
    return "\n".join([*(_line(c) for c in report.checks), "", _summary(report)]) + "\n"


def versions() -> dict[str, Any]:
    """edgegw's, Python's, the system's and the main libraries' versions."""
    libraries: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = None
    return {
        "edgegw": __version__,
        "python": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "libraries": libraries,
    }


def service_log() -> str:
    """The edgegw service's newest journal lines (needs journalctl and the right to read)."""
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        raise RuntimeError("journalctl is not installed here")
    command = [
        journalctl,
        "-u",
        "edgegw",
        "-n",
        str(JOURNAL_LINES),
        "--no-pager",
        "-o",
        "short-iso",
    ]
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments
            command, capture_output=True, text=True, timeout=15, check=False
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError("journalctl did not answer within 15 s") from None
    if done.returncode != 0:
        raise RuntimeError((done.stderr or f"journalctl exited {done.returncode}").strip())
    return done.stdout


_URL_USERINFO = re.compile(r"(\w+://)[^/@\s]+@")


def redact_config(text: str) -> str:
    """The configuration text with every secret value replaced by ``***``; comments, layout and
    references to secret files (``{ file = ... }``) kept."""
    try:
        document = tomlkit.parse(text)
    except Exception:
        return _SECRET_LINE.sub(rf'\1"{MASK}"', text)
    _mask(document)
    return document.as_string()


def _mask(node: Any) -> None:
    if isinstance(node, AoT):
        for table in node:
            _mask(table)
        return
    if isinstance(node, list):
        for item in node:
            _mask(item)
        return
    if not isinstance(node, dict | Table):
        return
    for key in list(node.keys()):
        value = node[key]
        if (
            isinstance(value, str)
            and SECRET_KEY.search(str(key))
            and not str(key).endswith("_file")
        ):
            node[key] = MASK
        elif isinstance(value, str) and _URL_USERINFO.search(value):
            node[key] = _URL_USERINFO.sub(rf"\1{MASK}@", value)  # wss://user:pass@host
        else:
            _mask(value)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:64] or "host"
