"""The layout is the design: checks that keep the code and docs/architecture.md in step.

The import contracts themselves run as ``lint-imports`` in ``make lint``; these tests pin
what a contract cannot see: what importing the engine actually loads at run time, and
that the architecture page names every package and only modules that exist.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def _modules_loaded_by(statement: str) -> set[str]:
    """Top-level package names in sys.modules after ``statement`` in a fresh interpreter."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return {name.split(".")[0] for name in json.loads(done.stdout)}


@pytest.mark.parametrize("module", ["agent.engine.scheduler", "agent.engine.claims", "agent.core"])
def test_the_engine_and_core_load_no_http_or_kubernetes_code(module: str) -> None:
    loaded = _modules_loaded_by(f"import {module}")
    assert "agent" in loaded  # the import did happen
    heavy = {"httpx", "httpcore", "aiohttp", "kubernetes_asyncio", "fastapi", "uvicorn", "re2"}
    assert not loaded & heavy, f"importing {module} loaded {sorted(loaded & heavy)}"


def test_the_supervisor_loads_none_of_the_agents_libraries() -> None:
    """With ``--processes N`` the supervisor runs only ``run``, ``supervisor``, ``process``
    and the HTTP API: the workers load the agent (and fork from a server that did)."""
    loaded = _modules_loaded_by("import agent.service.run, agent.service.supervisor")
    heavy = {"httpx", "httpcore", "aiohttp", "kubernetes_asyncio", "re2", "h2"}
    assert not loaded & heavy, f"the supervisor loaded {sorted(loaded & heavy)}"


def test_the_executor_loads_no_kubernetes_code() -> None:
    loaded = _modules_loaded_by("import agent.executor.executor")
    assert "httpx" in loaded  # what the executor is for
    assert "kubernetes_asyncio" not in loaded


def _named_paths(text: str) -> set[str]:
    """``agent/...`` paths named in the page: in prose (``core/model.py``-style names under a
    folder are resolved against the layout block) and in the layout block."""
    layout = text.split("## Layout", 1)[1].split("```")[1]
    named: set[str] = set()
    folder = ""
    for line in layout.splitlines():
        if not line.strip() or line.strip() == "agent/":
            continue
        if not line.startswith("  "):
            break  # past agent/: the simulator's distribution

        first, *rest = line.split()
        if first.endswith("/"):
            folder = first
            named.add(f"agent/{first.rstrip('/')}")
            for word in rest:
                if word.endswith(".py"):
                    named.add(f"agent/{folder}{word}")
        elif first.endswith(".py"):
            named.add(f"agent/{first}")
    return named


def test_every_module_the_architecture_page_names_exists() -> None:
    named = _named_paths(ARCHITECTURE.read_text())
    assert len(named) > 30  # the layout block was read
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"


def test_every_package_and_module_of_the_agent_is_named_on_the_architecture_page() -> None:
    named = _named_paths(ARCHITECTURE.read_text())
    packages = {
        f"agent/{p.name}" for p in (ROOT / "agent").iterdir() if (p / "__init__.py").exists()
    }
    modules = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "agent").glob("*/*.py")
        if p.name != "__init__.py" and p.parent.name != "expr"
    } | {
        str(p.relative_to(ROOT))
        for p in (ROOT / "agent").glob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }
    unnamed = sorted((packages | modules) - named)
    assert not unnamed, f"docs/architecture.md does not name: {unnamed}"


def test_the_contracts_are_configured_as_the_page_says() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    layers = re.search(r"layers = \[(.*?)\]", text, re.S)
    assert layers is not None
    order = [line.strip().strip('",') for line in layers.group(1).strip().splitlines()]
    assert order[0] == "agent.service" and order[-1] == "agent.core"
    page = ARCHITECTURE.read_text()
    for layer in order:
        for package in layer.split(" | "):
            assert f"`{package.removeprefix('agent.')}" in page, package
