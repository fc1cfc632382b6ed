"""Python calls and profiled time per relayed message, from a cProfile dump.

Run:  .venv/bin/python tests/bench/callprofile.py OUT.edgegw [OUT.bytepipe]

The dumps come from ``tests/bench/cprofsite/`` (a sitecustomize: how to take them is in its
docstring). A relayed message is one text frame sent (websockets' ``Protocol.send_text``), so the
counts do not depend on the box's load, unlike CPU time; profiled time overstates call-dense code.
Not part of the test suite.
"""

from __future__ import annotations

import pstats
import sys
from collections import Counter


def short(path: str) -> str:
    for cut in ("site-packages/", "work/main/", "python3.11/"):
        path = path.rsplit(cut, maxsplit=1)[-1]
    return path


def report(path: str) -> None:
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    rows = [(key, value) for key, value in stats.items() if "poll" not in key[2]]
    messages = sum(v[1] for k, v in rows if k[2] == "send_text" and "websockets/protocol" in k[0])
    messages = max(messages, 1)
    calls = sum(v[1] for _k, v in rows)
    busy = sum(v[2] for _k, v in rows)
    print(
        f"{path}: {messages} messages, {calls / messages:.0f} calls/msg, "
        f"{busy * 1e6 / messages:.0f} us/msg busy (profiled)"
    )
    by_file: Counter[str] = Counter()
    time_by_file: Counter[str] = Counter()
    for key, value in rows:
        by_file[short(key[0])] += value[1]
        time_by_file[short(key[0])] += value[2]
    for name, count in by_file.most_common(25):
        print(
            f"  {count / messages:6.1f}/msg "
            f"{time_by_file[name] * 1e6 / messages:6.1f} us/msg {name}"
        )
    print("  functions by own time:")
    for key, value in sorted(rows, key=lambda kv: -kv[1][2])[:30]:
        print(
            f"  {value[1] / messages:6.1f}/msg {value[2] * 1e6 / messages:6.1f} us/msg "
            f"{short(key[0])}:{key[1]} {key[2]}"
        )


if __name__ == "__main__":
    for name in sys.argv[1:]:
        report(name)
