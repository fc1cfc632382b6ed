"""Install smoke test: what a user installs, installed the way the README says, works.

    python -m tests.install.smoke        (``make install-smoke``; ``make test`` runs it too)

Builds the wheel from the checkout, installs it with plain pip (no dev extras) in a fresh
virtualenv, then, from that virtualenv only: imports every module, runs ``edgegw version``,
``edgegw meter profiles``, ``edgegw config check`` on every example configuration, and
``edgegw run`` of an example configuration (on a free port, with a temporary database) until
it tells systemd READY=1 over ``$NOTIFY_SOCKET``; then SIGTERM, and exit 0 is expected.
Exits 1 at the first step that fails, saying which and why.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Sequence
from pathlib import Path

import tomlkit

from edgegw import __version__
from tests.install.wheel import ROOT, build_wheel

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
RUN_EXAMPLE = ROOT / "examples" / "garage.toml"
IMPORT_ALL = (
    "import importlib, pkgutil, edgegw\n"
    "names = [m.name for m in pkgutil.walk_packages(edgegw.__path__, 'edgegw.')\n"
    "         if m.name != 'edgegw.__main__']\n"
    "for name in names:\n"
    "    importlib.import_module(name)\n"
    "print(edgegw.__file__, len(names))\n"
)


class SmokeError(Exception):
    """A step failed; the message says which and why."""


def step(title: str) -> float:
    print(f"install-smoke: {title} ...", flush=True)
    return time.monotonic()


def done(started: float, detail: str = "") -> None:
    extra = f": {detail}" if detail else ""
    print(f"install-smoke:   ok ({time.monotonic() - started:.1f} s){extra}", flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without what would make the installed edgegw import the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, **extra}


def check(args: Sequence[str | Path], what: str, cwd: Path) -> str:
    """Run from ``cwd`` (not the checkout: its edgegw/ would shadow the installed one)."""
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env=clean_env(),
    )
    if result.returncode != 0:
        raise SmokeError(f"{what} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return str(result.stdout)


def run_config(example: Path, work: Path) -> Path:
    """``example`` with a free port, a temporary database and control socket, its first
    charger on a shipped charger model and a meter on a shipped profile (so the run reads the
    shipped device files). Nothing answers at the meter's address: the daemon runs and retries."""
    document = tomlkit.parse(example.read_text(encoding="utf-8"))
    document.setdefault("server", tomlkit.table())["port"] = 0
    document.setdefault("store", tomlkit.table())["path"] = str(work / "edgegw.db")
    control = document.setdefault("control", tomlkit.table())
    control["socket"] = str(work / "control.sock")
    control["group"] = ""
    document.setdefault("daemon", tomlkit.table())["hardware_dir"] = str(work / "hardware")
    chargers = document.get("chargers")
    if chargers:
        chargers[0]["model"] = "keba-p30"
    bus = tomlkit.table()
    bus.update({"transport": "tcp", "host": "127.0.0.1", "port": 9, "timeout": 0.5})
    buses = tomlkit.table(is_super_table=True)
    buses["smoke"] = bus
    document["buses"] = buses
    meters = tomlkit.aot()
    meter = tomlkit.table()
    meter.update({"name": "smoke", "bus": "smoke", "profile": "eastron-sdm630", "role": "monitor"})
    meters.append(meter)
    document["meters"] = meters
    path = work / "run.toml"
    path.write_text(tomlkit.dumps(document), encoding="utf-8")
    return path


def run_until_ready(edgegw: Path, config: Path, work: Path) -> str:
    """Start ``edgegw run``, wait for READY=1, SIGTERM it, expect exit 0; the READY message."""
    address = str(work / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        notify.settimeout(0.5)
        env = clean_env(NOTIFY_SOCKET=address)
        env.pop("WATCHDOG_USEC", None)
        log = work / "run.log"
        with log.open("w") as output:
            process = subprocess.Popen(
                [str(edgegw), "run", "--config", str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=work,
            )
            try:
                ready = _wait_ready(notify, process, log)
                process.send_signal(signal.SIGTERM)
                code = process.wait(timeout=STOP_TIMEOUT)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        if code != 0:
            raise SmokeError(f"edgegw run exited {code} after SIGTERM:\n{log.read_text()}")
        return ready


def _wait_ready(notify: socket.socket, process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            message = notify.recv(4096).decode()
        except TimeoutError:
            if process.poll() is not None:
                raise SmokeError(
                    f"edgegw run exited {process.returncode} before READY:\n{log.read_text()}"
                ) from None
            continue
        if "READY=1" in message.split("\n"):
            return message.replace("\n", " ")
    raise SmokeError(f"no READY=1 within {READY_TIMEOUT:g} s:\n{log.read_text()}")


def smoke(work: Path) -> None:
    started = step("building the wheel from the checkout")
    wheel = build_wheel(work / "build")
    done(started, wheel.name)

    started = step("creating a fresh virtualenv and installing the wheel with plain pip")
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python, edgegw = env_dir / "bin" / "python", env_dir / "bin" / "edgegw"
    check([python, "-m", "pip", "install", "-q", wheel], "pip install", work)
    done(started)

    started = step("importing every edgegw module")
    where, count = check([python, "-c", IMPORT_ALL], "importing", work).split()
    if not Path(where).resolve().is_relative_to(env_dir.resolve()):
        raise SmokeError(f"edgegw was imported from {where}, not from the fresh virtualenv")
    done(started, f"{count} modules")

    started = step("edgegw version")
    version = check([edgegw, "version"], "edgegw version", work).strip()
    if version != __version__:
        raise SmokeError(f"edgegw version says {version!r}, the checkout is {__version__!r}")
    done(started, version)

    started = step("edgegw meter profiles")
    listing = json.loads(check([edgegw, "meter", "profiles", "--json"], "meter profiles", work))
    shipped = {p.stem for p in (ROOT / "hardware" / "meters").glob("*.toml")}
    listed = {row["id"] for row in listing["profiles"]}
    if not shipped <= listed:
        raise SmokeError(f"meter profiles misses {sorted(shipped - listed)}")
    done(started, f"{len(listed)} profiles")

    for example in sorted((ROOT / "examples").glob("*.toml")):
        started = step(f"edgegw config check examples/{example.name}")
        done(started, check([edgegw, "config", "check", example], "config check", work).strip())

    config = run_config(RUN_EXAMPLE, work)
    started = step("edgegw config check of it with a shipped charger model and meter profile")
    done(started, check([edgegw, "config", "check", config], "config check", work).strip())
    started = step(f"edgegw run (examples/{RUN_EXAMPLE.name}) until READY=1, then SIGTERM")
    done(started, run_until_ready(edgegw, config, work))


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgegw-smoke-") as tmp:
        try:
            smoke(Path(tmp))
        except (SmokeError, RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"install-smoke: FAILED: {exc}", file=sys.stderr, flush=True)
            return 1
    print(f"install-smoke: passed in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
