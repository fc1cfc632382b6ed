"""The wheel is the product: it holds every module, every device file, and declares every
package the code imports."""

from __future__ import annotations

import ast
import sys
import zipfile
from email.parser import Parser
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.install.wheel import ROOT, build_wheel, source_files

# pydantic's own compiled core, pinned exactly by pydantic: its documented types
# (ErrorDetails) are imported from it directly, and declaring it again could only disagree.
PART_OF_A_DEPENDENCY = {"pydantic_core": "pydantic"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return zipfile.ZipFile(build_wheel(tmp_path_factory.mktemp("wheel")))


def shipped(relative: Path) -> bool:
    return "__pycache__" not in relative.parts


def test_the_wheel_holds_every_device_file(wheel: zipfile.ZipFile) -> None:
    device_files = [p for p in source_files() if p.parts[0] == "hardware" and shipped(p)]
    assert len(device_files) > 20
    names = set(wheel.namelist())
    missing = [str(p) for p in device_files if f"edgegw/{p.as_posix()}" not in names]
    assert missing == [], "in hardware/ but not in the wheel"
    in_wheel = {n for n in names if n.startswith("edgegw/hardware/")}
    assert in_wheel == {f"edgegw/{p.as_posix()}" for p in device_files}


def test_the_wheel_holds_every_module(wheel: zipfile.ZipFile) -> None:
    modules = [p for p in source_files() if p.parts[0] == "edgegw" and p.suffix == ".py"]
    names = set(wheel.namelist())
    missing = [str(p) for p in modules if p.as_posix() not in names]
    assert missing == [], "add the package to [tool.setuptools] packages in pyproject.toml"
    assert "edgegw/py.typed" in names
    styles = [
        p.as_posix() for p in source_files() if p.parts[0] == "edgegw" and p.suffix == ".tcss"
    ]
    assert styles, "the TUI's style sheets are .tcss files under edgegw/tui/"
    assert set(styles) <= names, "add the *.tcss files to [tool.setuptools.package-data]"


def _third_party_imports() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "edgegw").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m != "edgegw" and m not in sys.stdlib_module_names}


def test_every_imported_package_is_declared(wheel: zipfile.ZipFile) -> None:
    (metadata,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    headers = Parser().parsestr(wheel.read(metadata).decode())
    declared = {
        _normal(req.name)
        for req in map(Requirement, headers.get_all("Requires-Dist") or [])
        if req.marker is None  # extras (dev) are not what a user installs
    }
    owners = packages_distributions()
    undeclared = {}
    for module in sorted(_third_party_imports()):
        dists = {_normal(d) for d in owners.get(module, [module])}
        wanted = PART_OF_A_DEPENDENCY.get(module)
        if not dists & declared and (wanted is None or _normal(wanted) not in declared):
            undeclared[module] = sorted(dists)
    assert undeclared == {}, "imported but not in [project] dependencies"
    assert {"cryptography", "jsonschema"} <= declared


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")
