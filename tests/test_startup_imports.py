"""What the daemon loads and when: packages a site without them never needs stay unloaded.

Each check runs in a fresh interpreter (this one has loaded everything the other tests use).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def _run(code: str) -> Any:
    """Run ``code`` in a fresh interpreter; what it printed last, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_jsonschema_is_loaded_by_the_first_frame_the_fast_check_cannot_pass() -> None:
    seen = _run(
        """
import json, sys
from edgegw.proxy import schemas
loaded = []
schemas.check_call("Heartbeat", {})
schemas.check_call("StatusNotification",
    {"connectorId": 1, "errorCode": "NoError", "status": "Available"})
schemas.check_result("BootNotification",
    {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 60})
schemas.check_call_201("Heartbeat", {})
loaded.append("jsonschema" in sys.modules)
try:
    schemas.check_call("StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"})
except schemas.SchemaViolation as exc:
    loaded.append(exc.code)
loaded.append("jsonschema" in sys.modules)
print(json.dumps(loaded))
"""
    )
    assert seen == [False, "PropertyConstraintViolation", True]


def test_the_daemon_loads_no_package_only_some_sites_use() -> None:
    # What `edgegw run` imports before it reads the configuration: Modbus (meters, a Modbus
    # limit), MQTT (telemetry, limits over MQTT), X.509 (certificate files) and jsonschema (a
    # frame the fast check cannot pass) are each imported by what uses them.
    loaded = _run(
        """
import json, sys
import edgegw.cli.entry, edgegw.cli.run, edgegw.daemon
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules}
    & {"aiomqtt", "cryptography", "jsonschema", "paho", "pymodbus"})))
"""
    )
    assert loaded == []


def test_edgegw_run_imports_no_other_command() -> None:
    loaded = _run(
        """
import json, sys
sys.argv = ["edgegw", "run", "--help"]
from edgegw.cli.entry import main
try:
    main()
except SystemExit as exc:
    assert exc.code == 0, exc.code
print(json.dumps(sorted(m for m in sys.modules if m.startswith("edgegw.cli."))))
"""
    )
    assert loaded == [
        "edgegw.cli.completion",
        "edgegw.cli.entry",
        "edgegw.cli.helpflags",
        "edgegw.cli.output",
        "edgegw.cli.run",
    ]
