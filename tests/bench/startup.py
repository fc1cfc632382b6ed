"""Start-up benchmark: process start to READY with 2,000 known chargers.

Run:  .venv/bin/python tests/bench/startup.py --chargers 2000 --runs 5

Builds a site the way it looks after months of service: a configuration listing ``--chargers``
chargers (each with a Basic-auth password hash and a cloud), and a database that knows them all
(boot details, connector status), with their previous sessions, installer cards, a cloud local
list and cached answers, outbox rows (delivered ones kept for a day, and some still queued), a
full message log and event list. Then it starts ``edgegw run`` ``--runs`` times and measures the
time from spawning the process to its sd_notify ``READY=1`` (target: 2 s), and prints where an
import of the CLI spends its time (``python -X importtime``) and which heavy packages
``edgegw run`` loads. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from authorize import make_cards
from capacity import machine

from edgegw.auth.passwords import hash_password
from edgegw.store.messagelog import LoggedFrame, dump_path, write_dump
from edgegw.store.outbox import LOCAL_ID_BASE
from edgegw.store.store import Store

TARGET_S = 2.0
HEAVY = (
    "textual",
    "rich",
    "typer",
    "click",
    "pymodbus",
    "serial",
    "smartcard",
    "aiomqtt",
    "paho",
    "cryptography",
    "tomlkit",
)


def write_config(tmp: Path, chargers: list[str], password_hash: str) -> Path:
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        "port = 0",
        "max_connections_per_address = 100000",
        "max_pending_handshakes = 100000",
        "[cloud]",
        'url = "ws://127.0.0.1:9/ocpp"',
        "[store]",
        f'path = "{tmp / "site.db"}"',
        "[logging]",
        'level = "info"',
        "[control]",
        f'socket = "{tmp / "control.sock"}"',
        'group = ""',
    ]
    for i, cid in enumerate(chargers):
        lines += [
            "[[chargers]]",
            f'id = "{cid}"',
            f'label = "Bay {i + 1}"',
            f'password_hash = "{password_hash}"',
            "max_current_a = 32",
        ]
    path = tmp / "site.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def fill_store(db: Path, chargers: list[str], args: argparse.Namespace) -> None:
    """Create the schema through the Store, then bulk-insert months of history."""
    store = await Store.open(db)
    await store.close()
    rng = random.Random(1)
    now = time.time()
    frame = json.dumps(
        [2, "x", "MeterValues", {"connectorId": 1, "transactionId": 1, "meterValue": []}]
    )
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO chargers (id, first_seen, last_seen, last_address, vendor, model,"
            " serial, firmware, last_boot) VALUES (?, ?, ?, '10.0.0.1', 'Vendor', 'Model',"
            " ?, '1.0', ?)",
            ((c, now - 9e6, now, f"SN{c}", now - 86400) for c in chargers),
        )
        conn.executemany(
            "INSERT INTO connector_status (charger_id, connector_id, status, error_code,"
            " updated_at) VALUES (?, ?, 'Available', 'NoError', ?)",
            ((c, k, now) for c in chargers for k in (0, 1, 2)),
        )
        conn.executemany(
            "INSERT INTO transactions (charger_id, connector_id, transaction_id, origin, id_tag,"
            " meter_start, started_at, meter_stop, stopped_at, stop_reason, recorded_at)"
            " VALUES (?, ?, ?, 'cloud', 'AABBCCDD', 0, '2026-01-01T00:00:00Z', 12000,"
            " '2026-01-01T02:00:00Z', 'Local', ?)",
            (
                (c, 1 + i % 2, n * 1000 + i, now)
                for n, c in enumerate(chargers)
                for i in range(args.sessions)
            ),
        )
        cards = make_cards(args.cards + args.cloud + args.cached, rng)
        conn.executemany(
            "INSERT INTO cards (id_tag, owner, created_at, updated_at) VALUES (?, ?, ?, ?)",
            ((c.canonical, f"owner {i}", now, now) for i, c in enumerate(cards[: args.cards])),
        )
        cloud = cards[args.cards : args.cards + args.cloud]
        conn.executemany(
            "INSERT INTO cloud_list (id_tag, status) VALUES (?, 'Accepted')",
            ((c.canonical,) for c in cloud),
        )
        conn.execute(
            "INSERT INTO settings (key, value) VALUES ('cloud_list_version', '7')"
            " ON CONFLICT (key) DO NOTHING"
        )
        cached = cards[args.cards + args.cloud :]
        conn.executemany(
            "INSERT INTO auth_cache (id_tag, status, learned_at) VALUES (?, 'Accepted', ?)",
            ((c.canonical, now - 3600) for c in cached),
        )
        # Outbox: a day of delivered rows for every charger, and a backlog on some of them.
        rows: list[tuple[str, str, str, int | None, float, str, str]] = []
        for n, c in enumerate(chargers):
            for i in range(args.delivered):
                rows.append((c, "MeterValues", frame, None, now - 3600, "delivered", f"d{n}-{i}"))
            if n % 10 == 0:
                local = LOCAL_ID_BASE + n
                rows.append((c, "StartTransaction", frame, local, now - 600, "queued", f"s{n}"))
                for i in range(args.queued):
                    rows.append((c, "MeterValues", frame, local, now - 500, "queued", f"q{n}-{i}"))
        conn.executemany(
            "INSERT INTO outbox (charger_id, action, payload, transaction_id, queued_at, state,"
            " digest, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ((*r, now - 1800 if r[5] == "delivered" else None) for r in rows),
        )
        conn.executemany(
            "INSERT INTO transaction_ids (charger_id, local_id, created_at) VALUES (?, ?, ?)",
            ((c, LOCAL_ID_BASE + n, now) for n, c in enumerate(chargers) if n % 10 == 0),
        )
        conn.executemany(
            "INSERT INTO events (at, kind, charger_id, message) VALUES (?, 'bench', ?, 'x')",
            ((now, chargers[i % len(chargers)]) for i in range(10000)),
        )
    # The message log a stopped daemon left next to its database: read back at start.
    write_dump(
        dump_path(db),
        [
            LoggedFrame(i + 1, now, chargers[i % len(chargers)], "charger>", frame)
            for i in range(20000)
        ],
    )
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def start_to_ready(config: Path, tmp: Path, run: int) -> tuple[float, str]:
    """Spawn ``edgegw run`` and time it until READY=1; returns (seconds, its log)."""
    notify = tmp / f"notify{run}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        sock.settimeout(120)
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgegw", "run", "--config", str(config)],
            env=dict(os.environ, NOTIFY_SOCKET=str(notify)),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            while True:
                message = sock.recv(4096).decode()
                if "READY=1" in message:
                    break
            elapsed = time.perf_counter() - started
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=60)
    notify.unlink()
    return elapsed, err


def import_profile(module: str, top: int) -> tuple[float, list[tuple[int, str]]]:
    """Wall time of ``python -c 'import module'`` and the top cumulative -X importtime rows."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    rows: list[tuple[int, str]] = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match and len(match.group(3)) <= 3:  # top-level imports and their direct children
            rows.append((int(match.group(2)), match.group(4)))
    rows.sort(reverse=True)
    return elapsed, rows[:top]


def phases(config: Path) -> dict[str, float]:
    """Where start-up goes, measured in a fresh process: interpreter, imports, config."""
    code = (
        "import time\n"
        "t0 = time.perf_counter()\n"
        "import edgegw.cli.main\n"
        "t1 = time.perf_counter()\n"
        "import edgegw.daemon\n"
        "t2 = time.perf_counter()\n"
        "from pathlib import Path\nfrom edgegw.config import load_config\n"
        f"load_config(Path({str(config)!r}))\n"
        "t3 = time.perf_counter()\n"
        "print(t1 - t0, t2 - t1, t3 - t2)\n"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - started
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    cli, daemon, load = (float(x) for x in out)
    return {
        "interpreter": bare,
        "import edgegw.cli.main": cli,
        "import edgegw.daemon (rest)": daemon,
        "load and check the config": load,
    }


def loaded_by_run(config: Path) -> list[str]:
    """Heavy packages in sys.modules of a process that imported what ``edgegw run`` imports."""
    code = (
        "import sys\n"
        "from edgegw.cli.main import app\n"
        "import edgegw.daemon\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return [x.strip(" '") for x in out.strip().strip("[]").split(",") if x.strip()]


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=50, help="past sessions per charger")
    parser.add_argument("--cards", type=int, default=10_000, help="installer cards")
    parser.add_argument("--cloud", type=int, default=10_000, help="cloud local-list entries")
    parser.add_argument("--cached", type=int, default=5_000, help="cached cloud answers")
    parser.add_argument("--delivered", type=int, default=20, help="delivered rows per charger")
    parser.add_argument("--queued", type=int, default=50, help="queued rows, every 10th charger")
    parser.add_argument("--top", type=int, default=15, help="import-time rows shown")
    args = parser.parse_args()
    print(machine())
    chargers = [f"SITE{i:05d}" for i in range(args.chargers)]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        config = write_config(tmp, chargers, hash_password("bench-password"))
        await fill_store(tmp / "site.db", chargers, args)
        size = (tmp / "site.db").stat().st_size / 2**20
        print(
            f"site: {args.chargers} chargers in the config and the store, "
            f"{args.chargers * args.sessions} past sessions, {args.cards} cards, "
            f"{args.cloud} cloud-list entries, {args.cached} cached answers, outbox "
            f"{args.chargers * args.delivered} delivered + "
            f"{(args.chargers + 9) // 10 * (args.queued + 1)} queued rows, 20000 logged frames; "
            f"database {size:.0f} MiB, config {config.stat().st_size / 1024:.0f} KiB "
            f"(built in {time.perf_counter() - t0:.1f} s)"
        )
        times: list[float] = []
        for run in range(args.runs):
            elapsed, err = start_to_ready(config, tmp, run)
            times.append(elapsed)
            if run == 0:
                ready = [line for line in err.splitlines() if "card authority" in line]
                for line in ready[:1]:
                    print("  gateway log:", line.split("] ", 1)[-1])
        verdict = "ok" if max(times) <= TARGET_S else "MISSED"
        print(
            f"start -> READY over {args.runs} runs: best {min(times):.2f} s, median "
            f"{statistics.median(times):.2f} s, worst {max(times):.2f} s "
            f"(target <= {TARGET_S:g} s: {verdict})"
        )
        split = phases(config)
        print("before Gateway.start (fresh process, one run):")
        for name, seconds in split.items():
            print(f"  {seconds:6.3f} s  {name}")
        rest = statistics.median(times) - sum(split.values())
        print(f"  {rest:6.3f} s  the rest of start -> READY (store, cards, listeners; median)")
        elapsed, rows = import_profile("edgegw.cli.main", args.top)
        print(f"python -c 'import edgegw.cli.main': {elapsed:.2f} s wall; top cumulative imports:")
        for micros, name in rows:
            print(f"  {micros / 1000:7.1f} ms  {name}")
        heavy = loaded_by_run(config)
        print(f"heavy packages loaded by `edgegw run`: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    asyncio.run(main())
