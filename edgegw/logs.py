"""Logging set-up: one line per event on stderr, in a form journald understands.

Under systemd (``$JOURNAL_STREAM`` set) each line starts with a ``<N>`` syslog priority prefix
and no timestamp (journald adds its own); elsewhere lines carry a timestamp.

Libraries that log what we already report are quietened. pymodbus logs every timeout and
CRC error at ERROR, with a traceback, on every poll of a missing meter: our meter code
reports the same fault once, as a state change with the installer's hint. Its messages are
kept for ``--log-level debug``, where the frames are what an installer needs.

websockets logs every connection's opening and closing and every reconnect attempt; we log
state changes, so only its errors are kept (a crash of its connection machinery), and each of
those at most once a minute (:class:`~edgegw.security.quiet_log.QuietFilter`): a bug that hits
every connection must not flood the journal. Crashes of our own connection handlers are logged
by the server itself, naming the charger.
"""

from __future__ import annotations

import logging
import os
import sys

from edgegw.security.quiet_log import QuietFilter

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
    quiet_libraries(debug=root.level <= logging.DEBUG)


# The loggers our websockets servers and clients are given (server.py, upstream.py).
WEBSOCKETS_LOGGERS = ("edgegw.websockets.server", "edgegw.websockets.client")


def quiet_libraries(*, debug: bool) -> None:
    """The levels and filters :func:`setup_logging` gives third-party loggers."""
    logging.getLogger("edgegw.websockets").setLevel(logging.ERROR)
    for name in WEBSOCKETS_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, QuietFilter)]:
            logger.removeFilter(old)
        logger.addFilter(QuietFilter())
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    quiet_pymodbus(debug=debug)


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
