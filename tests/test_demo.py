"""`edgegw demo` itself, a short run as a newcomer would start it."""

import asyncio
import sys


async def test_demo_short_run() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edgegw",
        "demo",
        "--chargers",
        "3",
        "--duration",
        "6",
        "--session-seconds",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "edgegw demo summary" in text
    assert "cloud record:            complete" in text
    started = int(text.split("sessions started:")[1].split()[0])
    assert started > 0
    log = err.decode()
    assert "edgegw ready" in log and "stopped in" in log
    assert "Traceback" not in log
