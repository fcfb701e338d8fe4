"""What ships, and with which versions: the two wheels and ``constraints.txt``.

The product wheel (argo-http-agent) must carry the agent and none of the simulator, which
is a distribution of its own (``sim/``, argo-http-agent-sim). Both wheels are built from a
copy of the working tree without build output, so a stale ``build/`` cannot hide a module
in (or out of) the wheel. The build is isolated (pip fetches the ``build-system``
requirements): the venv's own setuptools may be older than the one pyproject.toml names.

``constraints.txt`` pins what ``make test`` and the image install: every requirement of
both projects is pinned, each pin lies in pyproject.toml's range, and the pins are the
versions installed here, i.e. the ones these tests ran with.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"

_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".*_cache"
)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The file names in each wheel, keyed by distribution."""
    source = tmp_path_factory.mktemp("source") / "tree"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheels")
    for project in (source, source / "sim"):
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(project), "-w", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    contents: dict[str, list[str]] = {}
    for wheel in out.glob("*.whl"):
        distribution = wheel.name.split("-")[0]
        with zipfile.ZipFile(wheel) as archive:
            contents[distribution] = archive.namelist()
    assert set(contents) == {"argo_http_agent", "argo_http_agent_sim"}, sorted(contents)
    return contents


def test_the_product_wheel_carries_the_agent_and_no_simulator(
    wheels: dict[str, list[str]],
) -> None:
    names = wheels["argo_http_agent"]
    assert "agent/__init__.py" in names
    assert "agent/shims.py" in names
    assert "agent/py.typed" in names
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"agent_sim", "sim", "tests", "loadtest"}, sorted(tops)
    assert not [name for name in names if "agent_sim" in name]


def test_the_simulator_wheel_carries_agent_sim_only(wheels: dict[str, list[str]]) -> None:
    names = wheels["argo_http_agent_sim"]
    assert "agent_sim/__init__.py" in names
    assert "agent_sim/py.typed" in names
    tops = {name.split("/")[0] for name in names if not name.endswith(".dist-info/RECORD")}
    assert "agent" not in tops


# --- constraints.txt -----------------------------------------------------------------------


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, version = line.partition("==")
        assert separator and version, f"constraints.txt: {line!r} is not name==version"
        pins[canonicalize_name(name)] = version
    return pins


def _requirements() -> list[Requirement]:
    """Every requirement of both projects, extras included, but the sim's on the agent."""
    agent = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sim = tomllib.loads((ROOT / "sim" / "pyproject.toml").read_text())["project"]
    texts = list(agent["dependencies"]) + list(sim["dependencies"])
    for extra in agent["optional-dependencies"].values():
        texts += extra
    requirements = [Requirement(text) for text in texts]
    return [r for r in requirements if canonicalize_name(r.name) != "argo-http-agent"]


def test_constraints_pin_every_requirement_within_its_range() -> None:
    pins = _pins()
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt does not pin {requirement.name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pins[name]}, "
            f"outside pyproject.toml's {requirement}"
        )


def test_constraints_are_the_installed_versions() -> None:
    pins = _pins()
    assert "argo-http-agent" not in pins and "argo-http-agent-sim" not in pins
    installed = {
        canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
    }
    differ = {
        name: (version, installed[name])
        for name, version in pins.items()
        if name in installed and installed[name] != version
    }
    assert not differ, f"pinned vs installed (run `make test` to install the pins): {differ}"
    missing = sorted(set(pins) - set(installed))
    assert not missing, f"pinned but not installed: {missing}"


def test_constraints_say_how_they_were_made() -> None:
    header = [line for line in CONSTRAINTS.read_text().splitlines() if line.startswith("#")]
    assert any("make lock" in line for line in header)
    makefile = (ROOT / "Makefile").read_text()
    assert "\nlock:" in makefile and "-c constraints.txt" in makefile
