"""Build the wheel users install, from a clean copy of the checkout.

The copy holds what git would (tracked files and new files not ignored), so a ``build/`` or
``*.egg-info`` left in the working tree by an earlier build cannot slip stale files into the
wheel, and the build writes nothing into the working tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def source_files(root: Path = ROOT) -> list[Path]:
    """The checkout's files as git sees them, relative to ``root``."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    names = (name for name in listing.decode().split("\0") if name)
    return sorted(Path(name) for name in names if (root / name).is_file())


def clean_copy(dest: Path, root: Path = ROOT) -> Path:
    """Copy the checkout's files to ``dest`` (created) and return it."""
    for relative in source_files(root):
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    return dest


def build_wheel(workdir: Path, root: Path = ROOT) -> Path:
    """Build the project's wheel under ``workdir`` (pip, isolated build) and return its path."""
    source = clean_copy(workdir / "src", root)
    out = workdir / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the wheel failed:\n{result.stdout}{result.stderr}")
    (wheel,) = out.glob("edgegw-*.whl")
    return wheel
