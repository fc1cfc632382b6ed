"""``edgegw doctor``: everything that can be checked about a site, one line per check.

An installer who comes back to a site (or a caretaker on the phone with one) needs the whole
picture at once, not ten commands: is the configuration right, does the daemon run and is it
the version just installed, can the database be read, did every charger connect, does anything
wait for the cloud, can the cloud be reached, do the meters answer, is load capping working,
are the gateway's certificates about to expire, is the clock right. :class:`Doctor` runs each
check with the same code the dedicated command uses (the control socket's ops when the daemon
runs, the daemon's op code on its store when it does not), and says for each one PASS, WARN,
FAIL or SKIP, why, and which command shows more.

One check failing never stops the others, and an unexpected error inside a check is that
check's FAIL line, never a traceback: a doctor that crashes on the broken site it was asked
to examine is no use. Exit codes: 0 nothing failed (warnings allowed), 1 something failed,
3 the configuration is invalid (as ``edgegw config check``).
"""

from __future__ import annotations

import asyncio
import os
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer

import edgegw
from edgegw import __version__
from edgegw.cli.chargers import _ChargerStore
from edgegw.cli.completion import complete_charger
from edgegw.cli.meter import HINTS as METER_HINTS
from edgegw.cli.meter import _quiet_logs, probe_meter
from edgegw.cli.output import (
    DEFAULT_CONFIG_PATH,
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    ConfigOption,
    DaemonClient,
    JsonOption,
    emit,
    running_daemon,
)
from edgegw.cli.status import _StatusStore
from edgegw.config import Config, ConfigError, MeterConfig, load_config
from edgegw.control.client import RemoteError
from edgegw.control.protocol import ErrorCode
from edgegw.energy.meters import ModbusBus, ModbusConnectionError
from edgegw.hardware_catalogue import HardwareCatalogue
from edgegw.proxy.cloudcheck import Identity, StepStatus, check_cloud
from edgegw.security.certs import CERT_WARN_DAYS, Validity, certificate_files, read_certificates
from edgegw.store.readonly import schema_version
from edgegw.store.schema import MIGRATIONS

__all__ = [
    "BACKLOG_WARN_S",
    "CERT_WARN_DAYS",
    "Check",
    "Doctor",
    "DoctorReport",
    "build_year",
    "check_certificate",
    "check_clock",
    "doctor",
    "register",
]

Status = StepStatus
"""PASS, WARN, FAIL, SKIP: the same words as ``edgegw cloud check``."""

DAEMON_TIMEOUT: Final = 5.0
"""Seconds the daemon has to answer one control call."""
CLOUD_TIMEOUT: Final = 3.0
"""Seconds per cloud step (DNS, TCP, TLS, handshake): doctor gives an overview, not a wait."""
METER_TIMEOUT: Final = 1.0
"""Answer timeout of one Modbus read in the one-shot meter probe."""
METER_BUDGET: Final = 5.0
"""Seconds one meter's whole one-shot probe may take."""
BACKLOG_WARN_S: Final = 15 * 60
"""A message queued for the cloud longer than this means the cloud link is not draining."""
SEEN_RECENTLY_S: Final = 3600.0
"""With the daemon stopped, a charger last seen longer ago than this is worth a look."""
RELEASE_YEAR: Final = 2026
"""No edgegw was built before this year: a clock reading earlier is certainly wrong."""
_DANGEROUS_FLAGS: Final = frozenset({"ignores_limit"})
"""Controller flags that mean a charger may overload the site (others are warnings)."""


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked, the verdict, why, and where to look next."""

    name: str
    """Stable key for scripts: ``config``, ``daemon``, ``charger:CP1``, ``tls:server``..."""
    title: str
    status: StepStatus
    detail: str
    command: str = ""
    """The command that shows more (or fixes it)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "detail": self.detail,
            "command": self.command,
        }


@dataclass(slots=True)
class DoctorReport:
    """Every check in the order it ran, and the exit code they add up to."""

    config: Path
    checks: list[Check] = field(default_factory=list)
    config_invalid: bool = False

    def count(self, status: StepStatus) -> int:
        return sum(1 for c in self.checks if c.status is status)

    @property
    def exit_code(self) -> int:
        if self.config_invalid:
            return EXIT_CONFIG
        return EXIT_FAILURE if self.count(Status.FAIL) else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code == EXIT_OK,
            "exit_code": self.exit_code,
            "config": str(self.config),
            "version": __version__,
            "summary": {s.value: self.count(s) for s in Status},
            "checks": [c.as_dict() for c in self.checks],
        }


# --------------------------------------------------------------------------------------------
# Checks that need no site


def build_year() -> int:
    """The year this edgegw was built or installed: its files were written then, so a clock
    reading an earlier year is wrong (files from a reproducible build may say 1980: those
    fall back to :data:`RELEASE_YEAR`)."""
    try:
        written = Path(edgegw.__file__).stat().st_mtime
    except OSError:
        return RELEASE_YEAR
    return max(RELEASE_YEAR, time.gmtime(written).tm_year)


def check_clock(now: float, year: int) -> Check:
    """Warn when the system clock reads a time before ``year`` (a board without a battery
    clock that booted without NTP): TLS certificates look invalid, transaction times and
    meter values are wrong for the cloud and the chargers."""
    shown = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M UTC")
    if now < datetime(year, 1, 1, tzinfo=UTC).timestamp():
        return Check(
            "clock",
            "system clock",
            Status.WARN,
            f"reads {shown}, before this edgegw was built ({year}): chargers and the cloud "
            "need a right clock (TLS certificates, transaction times); check NTP",
            "timedatectl",
        )
    return Check("clock", "system clock", Status.PASS, f"reads {shown}", "timedatectl")


def check_certificate(key: str, path: Path, now: float, warn_days: int = CERT_WARN_DAYS) -> Check:
    """One PEM certificate chain of the gateway: its first (leaf) certificate's validity."""
    command = f"openssl x509 -noout -subject -dates -in {path}"
    title = f"TLS {key}"
    try:
        leaf = read_certificates(path)[0]
    except OSError as exc:
        return Check(f"tls:{key}", title, Status.FAIL, f"cannot read {path}: {exc}", command)
    except ValueError as exc:
        return Check(f"tls:{key}", title, Status.FAIL, f"{path}: not a PEM certificate: {exc}")
    days = leaf.days_left(now)
    validity = leaf.validity(now, warn_days)
    if validity is Validity.EXPIRED:
        return Check(
            f"tls:{key}",
            title,
            Status.FAIL,
            f"{path} expired on {leaf.until}: chargers refuse the connection; renew it",
            command,
        )
    if validity is Validity.NOT_YET_VALID:
        return Check(
            f"tls:{key}",
            title,
            Status.FAIL,
            f"{path} is valid only from {leaf.since}: a new certificate, or the clock is wrong",
            command,
        )
    if validity is Validity.EXPIRING:
        return Check(
            f"tls:{key}",
            title,
            Status.WARN,
            f"{path} expires on {leaf.until}, in {days} day(s): renew it soon",
            command,
        )
    return Check(
        f"tls:{key}", title, Status.PASS, f"valid until {leaf.until} ({days} days)", command
    )


def _reason(exc: BaseException) -> str:
    """An exception as one line for a FAIL detail."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _amps(values: Any) -> str:
    if not isinstance(values, list | tuple):
        return "-"
    return " / ".join("-" if v is None else f"{round(v, 1):g}" for v in values)


# --------------------------------------------------------------------------------------------
# The site's checks


class Doctor:
    """Runs every check for one configuration file; see the module docstring.

    ``on_check`` sees each line as it is decided (the command prints it at once, so a slow
    cloud check does not hide what is already known).
    """

    def __init__(
        self,
        config_path: Path,
        *,
        charger: str | None = None,
        skip_cloud: bool = False,
        skip_meters: bool = False,
        clock: Callable[[], float] = time.time,
        on_check: Callable[[Check], None] | None = None,
    ) -> None:
        self.config_path = config_path
        self.charger = charger
        self.skip_cloud = skip_cloud
        self.skip_meters = skip_meters
        self._clock = clock
        self._on_check = on_check
        self.report = DoctorReport(config_path)
        self.config: Config | None = None
        self._client: DaemonClient | None = None
        self._store_problem: str | None = None
        self._answers: dict[str, Any] = {}

    # ------------------------------------------------------------------ running

    def run(self) -> DoctorReport:
        self._guard("config", "configuration", self._check_config)
        self._guard("clock", "system clock", lambda: [check_clock(self._clock(), build_year())])
        if self.config is None:
            for name, title in (
                ("daemon", "daemon"),
                ("database", "database"),
                ("chargers", "chargers"),
                ("cloud", "cloud"),
                ("meters", "meters"),
            ):
                self._add(Check(name, title, Status.SKIP, "needs a valid configuration"))
            return self.report
        self._guard("daemon", "daemon", self._check_daemon)
        self._guard("database", "database", self._check_database)
        self._guard("chargers", "chargers", self._check_chargers)
        self._guard("pending", "unknown chargers", self._check_pending)
        self._guard("sync", "cloud backlog", self._check_sync)
        self._guard("cloud", "cloud", self._check_cloud)
        self._guard("meters", "meters", self._check_meters)
        self._guard("load", "load capping", self._check_load)
        self._guard("tls", "TLS certificates", self._check_certificates)
        return self.report

    def _guard(self, name: str, title: str, check: Callable[[], list[Check]]) -> None:
        """Run one check; whatever it raises becomes its FAIL line."""
        try:
            found = check()
        except Exception as exc:  # one broken check must not hide the others
            found = [Check(name, title, Status.FAIL, f"could not check: {_reason(exc)}")]
        for one in found:
            self._add(one)

    def _add(self, check: Check) -> None:
        self.report.checks.append(check)
        if self._on_check is not None:
            self._on_check(check)

    def _cmd(self, command: str) -> str:
        """``command`` with ``-c FILE`` when the configuration is not the default one."""
        if self.config_path == DEFAULT_CONFIG_PATH or not command.startswith("edgegw "):
            return command
        return f"{command} -c {self.config_path}"

    def _ask(self, op: str) -> Any:
        """``op`` of the running daemon, else the daemon's own op code on its store (the way
        ``edgegw status`` and ``edgegw chargers`` read a stopped site); answers are kept."""
        if op in self._answers:
            return self._answers[op]
        if self._client is not None:
            answer = self._client.call(op)
        else:
            assert self.config is not None
            local = _ChargerStore if op.startswith("chargers.") else _StatusStore
            with local(self.config) as store:
                answer = store.call(op)
        self._answers[op] = answer
        return answer

    def _store_unusable(self, name: str, title: str, command: str) -> list[Check] | None:
        """A SKIP line when the daemon is stopped and its store cannot be read as it is."""
        if self._client is None and self._store_problem is not None:
            return [Check(name, title, Status.SKIP, self._store_problem, self._cmd(command))]
        return None

    # ------------------------------------------------------------------ configuration

    def _check_config(self) -> list[Check]:
        # main imports this module
        from edgegw.cli.main import _every_problem, reference_checks  # noqa: PLC0415

        command = f"edgegw config check {self.config_path}"
        try:
            cfg = load_config(self.config_path)
        except ConfigError as exc:
            self.report.config_invalid = True
            every = list(exc.problems)
            _every_problem(self.config_path, None, every, [])  # as `config check`: all at once
            return [
                Check(
                    "config",
                    "configuration",
                    Status.FAIL,
                    f"{len(every)} problem(s): {'; '.join(every)}",
                    command,
                )
            ]
        self.config = cfg  # the other checks can run even if the next lines raise
        raw = tomllib.loads(self.config_path.read_text(encoding="utf-8"))
        problems, warnings = reference_checks(cfg, raw)
        if problems:
            self.report.config_invalid = True
            return [
                Check(
                    "config",
                    "configuration",
                    Status.FAIL,
                    f"{len(problems)} problem(s): {'; '.join(problems)}",
                    command,
                )
            ]
        cloud = f"relaying to {cfg.cloud.url}" if cfg.cloud else "standalone (no cloud)"
        meters = f", {len(cfg.meters)} meter(s)" if cfg.meters else ""
        summary = f"{len(cfg.chargers)} charger(s){meters}, {cloud}"
        if warnings:
            return [
                Check(
                    "config",
                    "configuration",
                    Status.WARN,
                    f"valid ({summary}); {len(warnings)} warning(s): {'; '.join(warnings)}",
                    command,
                )
            ]
        return [Check("config", "configuration", Status.PASS, f"valid: {summary}", command)]

    # ------------------------------------------------------------------ daemon and store

    def _check_daemon(self) -> list[Check]:
        assert self.config is not None
        socket = self.config.control.socket
        command = "systemctl status edgegw"
        client = running_daemon(self.config, timeout=DAEMON_TIMEOUT)
        if client is None:
            return [
                Check(
                    "daemon",
                    "daemon",
                    Status.FAIL,
                    f"not running (nothing answers at {socket}); start it with "
                    "`systemctl start edgegw`; the other checks read its files",
                    command,
                )
            ]
        started = time.monotonic()
        status = client.call("status")
        took = time.monotonic() - started
        self._client = client
        self._answers["status"] = status
        version = status.get("version")
        if version != __version__:
            return [
                Check(
                    "daemon",
                    "daemon",
                    Status.WARN,
                    f"running edgegw {version}, but this command is {__version__}: restart it "
                    "after an upgrade (`systemctl restart edgegw`)",
                    command,
                )
            ]
        uptime = status.get("uptime_s") or 0
        slow = f"; slow to answer ({took:.1f} s)" if took > 1.0 else ""
        return [
            Check(
                "daemon",
                "daemon",
                Status.WARN if slow else Status.PASS,
                f"running edgegw {version} for {_ago(uptime).removesuffix(' ago')}, answering "
                f"at {socket}{slow}",
                self._cmd("edgegw status"),
            )
        ]

    def _check_database(self) -> list[Check]:
        assert self.config is not None
        path = self.config.store.path
        command = self._cmd("edgegw status")
        running = self._client is not None
        if not path.exists():
            if running:
                return [
                    Check(
                        "database",
                        "database",
                        Status.FAIL,
                        f"the daemon runs but there is no database at {path}: is it another "
                        "configuration's daemon (control.socket and store.path)?",
                        command,
                    )
                ]
            return [  # the checks that read the store see an empty one: nothing happened yet
                Check(
                    "database",
                    "database",
                    Status.WARN,
                    f"no database at {path} yet: edgegw creates it when it first starts",
                    command,
                )
            ]
        if not os.access(path, os.R_OK):
            self._store_problem = f"cannot read {path} as this user: run doctor with sudo"
            return [
                Check(
                    "database",
                    "database",
                    Status.WARN if running else Status.FAIL,
                    f"{path} belongs to the daemon's user: run `sudo edgegw doctor` to check it",
                    command,
                )
            ]
        try:
            version = asyncio.run(schema_version(path))
        except Exception as exc:
            self._store_problem = f"the database cannot be read: {_reason(exc)}"
            raise
        current = len(MIGRATIONS)
        if version < current:
            self._store_problem = (
                f"the database has schema {version}; the daemon upgrades it to {current} when "
                "it starts (doctor does not write it)"
            )
            return [
                Check(
                    "database",
                    "database",
                    Status.FAIL if running else Status.WARN,
                    f"{path} has schema version {version}, this edgegw writes {current}: "
                    + (
                        "the running daemon is older than this command; restart it"
                        if running
                        else "the daemon upgrades it when it starts"
                    ),
                    command,
                )
            ]
        size = path.stat().st_size / 1e6
        return [
            Check(
                "database",
                "database",
                Status.PASS,
                f"{path} readable, schema version {version} (current), {size:.1f} MB",
                command,
            )
        ]

    # ------------------------------------------------------------------ chargers

    def _check_chargers(self) -> list[Check]:
        assert self.config is not None
        if not self.config.chargers:
            return [
                Check(
                    "chargers",
                    "chargers",
                    Status.WARN,
                    "no charger configured",
                    self._cmd("edgegw chargers add"),
                )
            ]
        skipped = self._store_unusable("chargers", "chargers", "edgegw chargers list")
        if skipped:
            return skipped
        listed = {c["id"]: c for c in self._ask("chargers.list")["chargers"]}
        return [self._charger_line(c.id, listed.get(c.id)) for c in self.config.chargers]

    def _charger_line(self, charger_id: str, seen: dict[str, Any] | None) -> Check:
        name, title = f"charger:{charger_id}", f"charger {charger_id}"
        command = self._cmd(f"edgegw chargers show {charger_id}")
        assert self.config is not None
        server = self.config.server
        scheme = "wss" if server.tls_enabled else "ws"
        address = f"{scheme}://<gateway>:{server.port}{server.path}/{charger_id}"
        if seen is None or seen.get("last_seen") is None:
            refused = (seen or {}).get("refused")
            if refused:
                return Check(
                    name,
                    title,
                    Status.WARN,
                    f"tried {refused['count']} time(s) but was refused ({refused['reason']}): "
                    f"check its password (`edgegw chargers set-password {charger_id}`)",
                    command,
                )
            return Check(
                name,
                title,
                Status.WARN,
                f"never connected: set its OCPP server URL to {address}",
                command,
            )
        if seen.get("refused") and seen.get("state") == "pending":
            refused = seen["refused"]
            return Check(
                name,
                title,
                Status.WARN,
                f"refused {refused['count']} time(s) ({refused['reason']}): check its password",
                command,
            )
        age = self._clock() - float(seen["last_seen"])
        where = f" from {seen['address']}" if seen.get("address") else ""
        if seen.get("connected"):
            link = seen.get("cloud_link")
            cloud = f", cloud link {link}" if link and link != "standalone" else ""
            return Check(name, title, Status.PASS, f"connected{where}{cloud}", command)
        if self._client is not None:
            return Check(
                name,
                title,
                Status.WARN,
                f"not connected; last seen {_ago(age)}{where}: is it powered and on the network?",
                command,
            )
        if age > SEEN_RECENTLY_S:
            return Check(
                name,
                title,
                Status.WARN,
                f"last seen {_ago(age)}{where}, and edgegw is not running",
                command,
            )
        return Check(
            name,
            title,
            Status.PASS,
            f"last seen {_ago(age)}{where} (edgegw is not running now)",
            command,
        )

    def _check_pending(self) -> list[Check]:
        command = self._cmd("edgegw chargers pending")
        skipped = self._store_unusable("pending", "unknown chargers", "edgegw chargers pending")
        if skipped:
            return skipped
        unknown = [p for p in self._ask("chargers.pending") if not p.get("configured")]
        found = self._wrong_urls(command)
        if not unknown:
            return [
                Check("pending", "unknown chargers", Status.PASS, "none tried to connect", command),
                *found,
            ]
        ids = ", ".join(p["id"] for p in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        return [
            Check(
                "pending",
                "unknown chargers",
                Status.WARN,
                f"{len(unknown)} unknown identit{'y' if len(unknown) == 1 else 'ies'} refused "
                f"({ids}): approve the site's own with `edgegw chargers approve ID`",
                command,
            ),
            *found,
        ]

    def _wrong_urls(self, command: str) -> list[Check]:
        """One WARN line per charger that connected with a wrong URL (at most five)."""
        try:
            wrong = self._ask("chargers.wrong_urls")
        except RemoteError as exc:  # a daemon from before the op
            if exc.code == ErrorCode.UNKNOWN_OP:
                return []
            raise
        checks = []
        for w in wrong[:5]:
            attempts = "" if w.get("from_journal") else f" ({w['attempts']} attempt(s))"
            checks.append(
                Check(
                    "wrong_url",
                    "charger URL",
                    Status.WARN,
                    f"{w['address']} connected to {w['path']}{attempts}: {w['reason']}; set its "
                    f"OCPP server URL to {w['url']}",
                    command,
                )
            )
        if len(wrong) > 5:
            checks.append(
                Check(
                    "wrong_url",
                    "charger URL",
                    Status.WARN,
                    f"and {len(wrong) - 5} more connection(s) with a wrong URL",
                    command,
                )
            )
        return checks

    # ------------------------------------------------------------------ cloud

    def _check_sync(self) -> list[Check]:
        assert self.config is not None
        command = self._cmd("edgegw sync status")
        skipped = self._store_unusable("sync", "cloud backlog", "edgegw sync status")
        if skipped:
            return skipped
        sync = self._ask("sync.status")
        queued, parked = int(sync["queued"]), int(sync["parked"])
        if not queued and not parked:
            if self.config.cloud is None:
                return [
                    Check("sync", "cloud backlog", Status.SKIP, "standalone: no cloud", command)
                ]
            return [Check("sync", "cloud backlog", Status.PASS, "nothing waits", command)]
        ages = [c["oldest_age_s"] for c in sync["chargers"] if c.get("oldest_age_s") is not None]
        oldest = max(ages, default=None)
        problems = []
        if parked:
            problems.append(
                f"{parked} message(s) parked (refused by the cloud): see `edgegw sync parked`, "
                "fix the cause, then `edgegw sync retry`"
            )
        if oldest is not None and oldest > BACKLOG_WARN_S:
            problems.append(
                f"the oldest queued message waits since {_ago(oldest).removesuffix(' ago')}"
                + ("" if self._client is not None else " (sent when edgegw starts)")
            )
        detail = f"{queued} queued, {parked} parked"
        if problems:
            return [
                Check(
                    "sync",
                    "cloud backlog",
                    Status.WARN,
                    f"{detail}: {'; '.join(problems)}",
                    command,
                )
            ]
        when = "" if oldest is None else f", oldest {_ago(oldest)}"
        return [Check("sync", "cloud backlog", Status.PASS, f"{detail}{when}: draining", command)]

    def _check_cloud(self) -> list[Check]:
        assert self.config is not None
        cfg = self.config
        if cfg.cloud is None:
            return [Check("cloud", "cloud", Status.SKIP, "standalone: no cloud configured")]
        if self.skip_cloud:
            return [
                Check(
                    "cloud",
                    "cloud",
                    Status.SKIP,
                    "skipped (--skip-cloud)",
                    self._cmd("edgegw cloud check"),
                )
            ]
        charger_id = self.charger or (cfg.chargers[0].id if cfg.chargers else None)
        identities: list[Identity] = []
        live = ""
        if charger_id is not None:
            configured = cfg.charger(charger_id)
            link = self._live_link(charger_id)
            if link in ("online", "replaying"):
                # The daemon's own link proves the handshake; a test connection as the same
                # identity could make a CSMS drop the live one.
                live = f"; the live cloud link of {charger_id} is {link}"
            else:
                identities.append(
                    Identity.from_config(configured) if configured else Identity(charger_id)
                )
        command = self._cmd(
            "edgegw cloud check" + (f" --charger {charger_id}" if charger_id else "")
        )
        report = asyncio.run(check_cloud(cfg.cloud, identities, timeout=CLOUD_TIMEOUT))
        failed = [s for s in report.steps if s.failed]
        if failed:
            first = failed[0]
            hint = f" ({first.hint})" if first.hint else ""
            return [
                Check(
                    "cloud", "cloud", Status.FAIL, f"{first.title}: {first.detail}{hint}", command
                )
            ]
        warned = [s for s in report.steps if s.status is Status.WARN]
        if warned:
            detail = "; ".join(f"{s.title}: {s.detail}" for s in warned)
            return [Check("cloud", "cloud", Status.WARN, f"reachable, but {detail}", command)]
        done = ", ".join(
            s.name.split(":")[0].upper() for s in report.steps if s.status is Status.PASS
        )
        who = f" as {charger_id}" if identities else ""
        return [
            Check(
                "cloud",
                "cloud",
                Status.PASS,
                f"{report.url} reachable{who} ({done}){live}",
                command,
            )
        ]

    def _live_link(self, charger_id: str) -> str | None:
        if self._client is None:
            return None
        for charger in self._ask("status").get("chargers", []):
            if charger.get("id") == charger_id and charger.get("connected"):
                link: str | None = charger.get("cloud_link")
                return link
        return None

    # ------------------------------------------------------------------ energy

    def _energy_state(self) -> dict[str, Any] | None:
        """``energy.state`` of the running daemon; None when it does not run or has no
        load capping (no [site])."""
        if self._client is None:
            return None
        try:
            state: dict[str, Any] = self._ask("energy.state")
        except RemoteError as exc:
            if exc.code == ErrorCode.UNAVAILABLE:
                return None
            raise
        return state

    def _check_meters(self) -> list[Check]:
        assert self.config is not None
        cfg = self.config
        if not cfg.meters:
            return [Check("meters", "meters", Status.SKIP, "no meter configured")]
        if self.skip_meters:
            return [Check("meters", "meters", Status.SKIP, "skipped (--skip-meters)")]
        state = self._energy_state()
        if state is not None:
            health = {m["name"]: m for m in state.get("meters", [])}
            return [self._meter_health(m, health.get(m.name)) for m in cfg.meters]
        checks = []
        for meter in cfg.meters:
            bus = cfg.buses.get(meter.bus)
            if self._client is not None and bus is not None and bus.transport == "rtu":
                checks.append(
                    Check(
                        f"meter:{meter.name}",
                        f"meter {meter.name}",
                        Status.SKIP,
                        f"the daemon holds {bus.device}; its meter health is shown with "
                        "load capping ([site]) only",
                    )
                )
                continue
            checks.append(self._guarded_probe(meter))
        return checks

    def _meter_health(self, meter: MeterConfig, health: dict[str, Any] | None) -> Check:
        name, title = f"meter:{meter.name}", f"meter {meter.name}"
        command = self._cmd("edgegw energy state")
        if health is None:
            return Check(name, title, Status.WARN, "the daemon does not read it", command)
        state = health.get("health")
        error = f": {health['last_error']}" if health.get("last_error") else ""
        kind = health.get("error_kind") or ""
        if state == "ok":
            return Check(name, title, Status.PASS, f"answering ({meter.profile})", command)
        if state == "stale":
            return Check(
                name,
                title,
                Status.WARN,
                f"answers, but its values stopped changing{error}",
                command,
            )
        if state == "error":
            hint = f" ({METER_HINTS[kind]})" if kind in METER_HINTS else ""
            return Check(
                name,
                title,
                Status.FAIL,
                f"{health.get('consecutive_failures', 0)} failed read(s) in a row{error}{hint}",
                self._cmd(f"edgegw meter probe --meter {meter.name}"),
            )
        return Check(name, title, Status.WARN, "not read yet", command)

    def _guarded_probe(self, meter: MeterConfig) -> Check:
        try:
            with _quiet_logs(False):
                return asyncio.run(self._probe(meter))
        except Exception as exc:  # a FAIL line, as for any check
            return Check(
                f"meter:{meter.name}",
                f"meter {meter.name}",
                Status.FAIL,
                f"could not check: {_reason(exc)}",
                self._cmd(f"edgegw meter probe --meter {meter.name}"),
            )

    async def _probe(self, meter: MeterConfig) -> Check:
        """One read of every register of the meter, with the CLI's probe code."""
        assert self.config is not None
        name, title = f"meter:{meter.name}", f"meter {meter.name}"
        command = self._cmd(f"edgegw meter probe --meter {meter.name}")
        config = self.config.buses[meter.bus]
        config = config.model_copy(
            update={"timeout": min(config.timeout, METER_TIMEOUT), "retries": 0}
        )
        profile = HardwareCatalogue.for_config(self.config).meter_profile(meter.profile)
        bus = ModbusBus(
            config, name=f"doctor-{meter.bus}", reconnect_min_delay=0, reconnect_max_delay=0
        )
        try:
            async with asyncio.timeout(METER_BUDGET):
                result = await probe_meter(bus, profile, meter.unit_id)
        except ModbusConnectionError as exc:
            return Check(name, title, Status.FAIL, f"{exc} ({METER_HINTS['connection']})", command)
        except TimeoutError:
            return Check(
                name, title, Status.FAIL, f"no complete read within {METER_BUDGET:g} s", command
            )
        finally:
            await bus.close()
        if result.failures:
            first = result.failures[0]
            hint = f" ({METER_HINTS[first.kind]})" if first.kind in METER_HINTS else ""
            return Check(
                name,
                title,
                Status.FAIL,
                f"{len(result.failures)} register block(s) failed, first {first.where}: "
                f"{first.message}{hint}",
                command,
            )
        if result.invalid:
            why = "; ".join(f"{q.value}: {text}" for q, text in result.invalid.items())
            return Check(name, title, Status.FAIL, f"answers with unusable values: {why}", command)
        values = result.reading.values()
        currents = [v for q, v in values.items() if q.value.startswith("current_")]
        shown = f": {_amps([round(v, 1) for v in currents])} A" if currents else ""
        return Check(
            name,
            title,
            Status.PASS,
            f"answers ({profile.id}, unit {meter.unit_id}{shown}, {result.seconds * 1000:.0f} ms)",
            command,
        )

    def _check_load(self) -> list[Check]:
        assert self.config is not None
        cfg = self.config
        site = cfg.site
        if site is None:
            return [Check("load", "load capping", Status.SKIP, "no [site]: load capping is off")]
        command = self._cmd("edgegw energy state")
        limits = site.limits()
        shares = [0.0, 0.0, 0.0]
        for charger in cfg.chargers:
            for phase in charger.site_phases():
                shares[phase] += charger.fallback_current_a
        over = [
            f"L{i + 1} {total:g} A > {limit - site.margin_a:g} A"
            for i, (total, limit) in enumerate(zip(shares, limits, strict=True))
            if total > limit - site.margin_a
        ]
        if over:  # load_config refuses this already; kept for a configuration edited since
            return [
                Check(
                    "load",
                    "load capping",
                    Status.FAIL,
                    f"fallback currents exceed the limit minus margin: {', '.join(over)}",
                    self._cmd("edgegw config check"),
                )
            ]
        fallback = (
            f"if the meter is lost, chargers share {_amps(shares)} A of {_amps(list(limits))} A"
            if any(shares)
            else "if the meter is lost, sessions pause"
        )
        state = self._energy_state()
        if state is None:
            why = "edgegw is not running" if self._client is None else "no live state"
            return [
                Check(
                    "load", "load capping", Status.PASS, f"configured ({fallback}); {why}", command
                )
            ]
        mode = state.get("mode")
        problems: list[str] = []
        warnings: list[str] = []
        if mode == "overload":
            problems.append("the site draws above its limit (mode overload)")
        elif mode == "fallback":
            problems.append(f"the site meter is lost (mode fallback, meter {state.get('meter')})")
        for charger in state.get("chargers", []):
            flags = set(charger.get("flags") or ())
            for flag in sorted(flags & _DANGEROUS_FLAGS):
                problems.append(f"{charger['id']} {flag.replace('_', ' ')}")
            for flag in sorted(flags - _DANGEROUS_FLAGS):
                warnings.append(f"{charger['id']} {flag.replace('_', ' ')}")
        if problems:
            return [
                Check("load", "load capping", Status.FAIL, "; ".join(problems + warnings), command)
            ]
        if warnings:
            return [Check("load", "load capping", Status.WARN, "; ".join(warnings), command)]
        budget = f", EV budget {_amps(state['budget_a'])} A" if state.get("budget_a") else ""
        return [
            Check("load", "load capping", Status.PASS, f"mode {mode}{budget} ({fallback})", command)
        ]

    # ------------------------------------------------------------------ certificates

    def _check_certificates(self) -> list[Check]:
        assert self.config is not None
        now = self._clock()
        found = [check_certificate(key, path, now) for key, path in _certificate_files(self.config)]
        if not found:
            return [Check("tls", "TLS certificates", Status.SKIP, "no certificate configured")]
        return found


def _certificate_files(cfg: Config) -> Iterator[tuple[str, Path]]:
    """The gateway's own certificates: the OCPP server's and its cloud client certificates."""
    for one in certificate_files(cfg):
        if not one.is_ca:
            yield one.key, one.path


# --------------------------------------------------------------------------------------------
# The command


def _line(check: Check) -> str:
    more = f"  → {check.command}" if check.command else ""
    return f"{check.status.value.upper():<4}  {check.title:<22} {check.detail}{more}"


def _summary(report: DoctorReport) -> str:
    counts = ", ".join(f"{report.count(s)} {s.value.upper()}" for s in Status)
    line = f"Summary: {len(report.checks)} checks — {counts}."
    failed = [c.title for c in report.checks if c.status is Status.FAIL]
    if report.config_invalid:
        return f"{line} The configuration is invalid: fix it first (`edgegw config check`)."
    if failed:
        return f"{line} Fix the FAIL lines first: {', '.join(failed)}."
    if report.count(Status.WARN):
        return f"{line} Nothing failed; look at the WARN lines."
    return f"{line} All good."


def doctor(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    charger: Annotated[
        str | None,
        typer.Option(
            "--charger",
            help="Charger identity for the cloud handshake (default: the first configured).",
            autocompletion=complete_charger,
        ),
    ] = None,
    skip_cloud: Annotated[
        bool, typer.Option("--skip-cloud", help="Do not connect to the cloud.")
    ] = False,
    skip_meters: Annotated[
        bool, typer.Option("--skip-meters", help="Do not read the meters.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Check everything that can be checked and summarise: configuration, daemon, database,
    chargers, cloud backlog and reachability, meters, load capping, certificates, clock.

    Exits 0 when nothing failed (warnings allowed), 1 when a check failed, 3 when the
    configuration is invalid.
    """

    def show(check: Check) -> None:
        if not as_json:
            typer.echo(_line(check))

    if not as_json:
        typer.echo(f"edgegw doctor {__version__}: checking the site of {config}")
    report = Doctor(
        config,
        charger=charger,
        skip_cloud=skip_cloud,
        skip_meters=skip_meters,
        on_check=show,
    ).run()
    emit(report.as_dict(), as_json, lambda _: _summary(report))
    raise typer.Exit(report.exit_code)


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to the ``edgegw`` command."""
    app.command("doctor")(doctor)
