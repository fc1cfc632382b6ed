"""The ``edgegw`` command's entry point: ``edgegw run`` (what systemd starts, and what stays
running) imports only what the daemon needs; every other command gets the full app
(:mod:`edgegw.cli.main`)."""

from __future__ import annotations

import sys


def main() -> None:
    """The ``edgegw`` command."""
    if sys.argv[1:2] == ["run"] and "--json" not in sys.argv[2:]:
        from edgegw.cli.run import run_alone  # noqa: PLC0415 (the point of this module)

        run_alone(sys.argv[2:])
        return
    from edgegw.cli.main import main as full  # noqa: PLC0415

    full()
