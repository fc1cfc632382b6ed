"""Logging set-up: one line per event on stderr, in a form journald understands.

Under systemd (``$JOURNAL_STREAM`` set) each line starts with a ``<N>`` syslog priority prefix
and no timestamp (journald adds its own); elsewhere lines carry a timestamp.

Libraries that log what we already report are quietened. pymodbus logs every timeout and
CRC error at ERROR, with a traceback, on every poll of a missing meter: our meter code
reports the same fault once, as a state change with the installer's hint. Its messages are
kept for ``--log-level debug``, where the frames are what an installer needs.
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        text = super().format(record)
        return "\n".join(prefix + line for line in text.splitlines())


def setup_logging(level: str = "info", *, journal: bool | None = None) -> None:
    if journal is None:
        journal = "JOURNAL_STREAM" in os.environ
    handler = logging.StreamHandler(sys.stderr)
    if journal:
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # websockets logs every reconnect attempt and handshake failure; we log state changes.
    logging.getLogger("edgegw.websockets").setLevel(logging.CRITICAL)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    quiet_pymodbus(debug=root.level <= logging.DEBUG)


def quiet_pymodbus(*, debug: bool) -> None:
    """Send pymodbus' records through our handler only, and only at debug level.

    Outside debug the ``pymodbus`` logger is set to CRITICAL (it never logs at that level);
    at debug it follows the root logger. Handlers pymodbus may have attached itself
    (``pymodbus_apply_logging_config``) are removed so nothing bypasses our format.
    """
    for name in ("pymodbus", "pymodbus.logging"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    logging.getLogger("pymodbus").setLevel(logging.NOTSET if debug else logging.CRITICAL)
