"""The local runner as a real process: exit codes, output shape, secrets, examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.executor.settings import ExecutorSettings
from agent.service.local import LocalInputError, load_manifest, run_local
from tests.servers import TargetServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def taskset(tasks: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTaskSet",
        "metadata": {"name": "wf", "namespace": "argo", **metadata},
        "spec": {"tasks": tasks},
    }


def local(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.service.local", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write(path: Path, document: Any) -> str:
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_success_prints_the_manifest_with_status(tmp_path: Path, target: TargetServer) -> None:
    manifest = taskset({"wf-1": {"name": "a", "http": {"url": target.url("/status/200")}}})
    done = local(write(tmp_path / "ts.yaml", manifest))
    assert done.returncode == 0, done.stderr
    printed = yaml.safe_load(done.stdout)
    assert printed == {
        **manifest,
        "status": {"nodes": {"wf-1": {"phase": "Succeeded", "outputs": {"result": "status 200"}}}},
    }


def test_any_failed_node_exits_1_and_others_still_run(tmp_path: Path, target: TargetServer) -> None:
    manifest = taskset(
        {
            "ok": {"http": {"url": target.url("/status/201")}},
            "bad-status": {"http": {"url": target.url("/status/500")}},
            "refused": {"http": {"url": "http://127.0.0.1:9/"}},
            "bad-template": {"http": {"url": "ftp://x/"}},
            "container": {"container": {"image": "alpine"}},
        }
    )
    done = local(write(tmp_path / "ts.yaml", manifest), "-o", "json")
    assert done.returncode == 1, done.stderr
    nodes = json.loads(done.stdout)["status"]["nodes"]
    assert nodes == {
        "ok": {"phase": "Succeeded", "outputs": {"result": "status 201"}},
        "bad-status": {
            "phase": "Failed",
            "message": "received non-2xx response code: 500",
            "outputs": {"result": "status 500"},
        },
        "refused": {
            "phase": "Failed",
            "message": 'Get "http://127.0.0.1:9/": '
            "dial tcp 127.0.0.1:9: connect: connection refused",
        },
        "bad-template": {
            "phase": "Failed",
            "message": 'Get "ftp://x/": unsupported protocol scheme "ftp"',
        },
        "container": {
            "phase": "Error",
            "message": "error processing task: agent cannot execute: unknown task type: Container",
        },
    }


def test_secrets_file_feeds_secret_headers(tmp_path: Path, target: TargetServer) -> None:
    manifest = taskset(
        {
            "wf-1": {
                "http": {
                    "url": target.url("/echo"),
                    "headers": [
                        {
                            "name": "X-Token",
                            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}},
                        }
                    ],
                }
            },
            "wf-2": {
                "http": {
                    "url": target.url("/echo"),
                    "headers": [
                        {
                            "name": "X-Token",
                            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "other"}},
                        }
                    ],
                }
            },
        }
    )
    secrets = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: argo}\n"
        "data: {token: c2VjcmV0LXZhbHVl}\n"  # "secret-value"
    )
    (tmp_path / "secrets.yaml").write_text(secrets)
    done = local(
        write(tmp_path / "ts.yaml", manifest),
        "--secrets",
        str(tmp_path / "secrets.yaml"),
        "-o",
        "json",
    )
    assert done.returncode == 1, done.stderr
    nodes = json.loads(done.stdout)["status"]["nodes"]
    echoed = json.loads(nodes["wf-1"]["outputs"]["result"])
    assert ["X-Token", "secret-value"] in echoed["headers"]
    assert nodes["wf-2"] == {
        "phase": "Failed",
        "message": "secret 'creds' does not have the key 'other'",
    }
    assert "secret-value" not in done.stderr


def test_manifest_from_stdin_as_json(target: TargetServer) -> None:
    manifest = taskset({"n": {"http": {"url": target.url("/status/204")}}})
    done = local("-", "-o", "json", stdin=json.dumps(manifest))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"]["nodes"] == {
        "n": {"phase": "Succeeded", "outputs": {"result": ""}}
    }


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "{file}: cannot read: No such file or directory"),
        # libyaml (CSafeLoader) reports where the flow sequence should have ended.
        ("spec: [unclosed", "{file}: not valid YAML or JSON at line 2, column 1: "),
        ('{"spec": [', "{file}: not valid JSON: "),
        (
            "spec: {tasks: {1: {}, '1': {}}}",
            "{file}: spec.tasks: node ID 1 is a number, not a string; quote it",
        ),
        ("spec: {tasks: {~: {}}}", "{file}: spec.tasks: node ID None is a null, not a string"),
        ("spec: {tasks: {true: {}}}", "{file}: spec.tasks: node ID True is a boolean, not a"),
        (
            "status: {nodes: {2: {}}}\nspec: {tasks: {a: {}}}",
            "{file}: status.nodes: node ID 2 is a number, not a string",
        ),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n"
                for i in range(7)
            )
            + "spec: {tasks: {a: *h}}",
            "{file}: expands into more than 2000000 values (YAML aliases count as copies)",
        ),
        ("spec: &s {tasks: {a: *s}}", "{file}: a YAML alias refers to its own anchor"),
        (
            "spec: {tasks: {a: " + "[" * 150 + "]" * 150 + "}}",
            "{file}: nested more than 100 levels deep",
        ),
        (
            '{"spec": {"tasks": {"a": ' + "[" * 150 + "]" * 150 + "}}}",
            "{file}: nested more than 100 levels deep",
        ),
        ("spec: " + "[" * 2000 + "]" * 2000, "{file}: not valid YAML or JSON at line 1, column "),
        ('{"spec": ' + "[" * 2000 + "]" * 2000 + "}", "{file}: not valid JSON: "),
        ("- a list", "{file}: expected a WorkflowTaskSet manifest (a mapping)"),
        (
            "kind: Workflow\nspec: {tasks: {}}",
            "{file}: kind: expected WorkflowTaskSet, got 'Workflow'",
        ),
        (
            "kind: WorkflowTaskSet\nspec: {}",
            "{file}: spec.tasks: required, a mapping of node ID to template",
        ),
        (
            "kind: WorkflowTaskSet\nspec: {tasks: [a]}",
            "{file}: spec.tasks: expected a mapping of node ID to template",
        ),
    ],
)
def test_unusable_manifest_exits_2_with_one_line(
    tmp_path: Path, content: str | None, error: str
) -> None:
    path = tmp_path / "ts.yaml"
    if content is not None:
        path.write_text(content)
    done = local(str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("argo-http-agent local: " + error.format(file=path))


def test_unusable_secrets_file_exits_2(tmp_path: Path) -> None:
    manifest = write(tmp_path / "ts.yaml", taskset({}))
    (tmp_path / "s.yaml").write_text("kind: Secret\nmetadata: {name: x}\ndata: {k: '***'}\n")
    done = local(manifest, "--secrets", str(tmp_path / "s.yaml"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"argo-http-agent local: {tmp_path / 's.yaml'}: secret 'x' key 'k' is not valid base64"
    )


def test_bad_usage_exits_2() -> None:
    done = local("--output", "xml", "file.yaml")
    assert done.returncode == 2
    assert "invalid choice: 'xml'" in done.stderr


async def test_run_local_in_process(target: TargetServer) -> None:
    manifest = taskset({"n": {"http": {"url": target.url("/status/200")}}})
    out = await run_local(manifest, settings=ExecutorSettings(ca_dir=None))
    assert out["status"] == {
        "nodes": {"n": {"phase": "Succeeded", "outputs": {"result": "status 200"}}}
    }
    assert "status" not in manifest  # the input is not modified


async def test_run_local_accepts_a_secret_mapping(target: TargetServer) -> None:
    manifest = taskset(
        {
            "n": {
                "http": {
                    "url": target.url("/echo"),
                    "headers": [
                        {"name": "X-T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
                    ],
                }
            }
        }
    )
    out = await run_local(
        manifest, secrets={"s": {"k": "v"}}, settings=ExecutorSettings(ca_dir=None)
    )
    echoed = json.loads(out["status"]["nodes"]["n"]["outputs"]["result"])
    assert ["X-T", "v"] in echoed["headers"]


async def test_run_local_rejects_an_unusable_manifest() -> None:
    with pytest.raises(LocalInputError, match=r"^spec: required"):
        await run_local({"kind": "WorkflowTaskSet"})


# -- the shipped examples ----------------------------------------------------------------

EXPECTED_PHASES = {
    "success.yaml": {"example-success-1": "Succeeded"},
    "failing-status.yaml": {"example-failing-status-1": "Failed"},
    "success-condition.yaml": {
        "example-success-condition-1": "Succeeded",
        "example-success-condition-2": "Failed",
    },
    "secret-header.yaml": {
        "example-secret-header-1": "Succeeded",
        "example-secret-header-2": "Failed",
    },
    "post-body.yaml": {"example-post-body-1": "Succeeded"},
    "body-from.yaml": {"example-body-from-1": "Succeeded"},
    "timeout.yaml": {"example-timeout-1": "Failed"},
}


def test_every_example_is_covered() -> None:
    shipped = {p.name for p in EXAMPLES.glob("*.yaml")} - {"secrets.yaml"}
    assert shipped == set(EXPECTED_PHASES)


@pytest.mark.parametrize("name", sorted(EXPECTED_PHASES))
def test_example_runs_against_the_echo_server(
    name: str, tmp_path: Path, target: TargetServer
) -> None:
    # The examples target the echo server on port 8765; point them at this test's server.
    text = (EXAMPLES / name).read_text().replace("127.0.0.1:8765", f"127.0.0.1:{target.port}")
    path = tmp_path / name
    path.write_text(text)
    load_manifest(str(path))
    done = local(str(path), "--secrets", str(EXAMPLES / "secrets.yaml"), "-o", "json")
    nodes = json.loads(done.stdout)["status"]["nodes"]
    assert {node: result["phase"] for node, result in nodes.items()} == EXPECTED_PHASES[name]
    assert done.returncode == (0 if set(EXPECTED_PHASES[name].values()) == {"Succeeded"} else 1)


# -- retryStrategy -------------------------------------------------------------------------


def test_retry_strategy_retries_and_reports_attempts(tmp_path: Path, target: TargetServer) -> None:
    manifest = taskset(
        {
            "always-500": {
                "http": {"url": target.url("/status/500")},
                "retryStrategy": {"limit": 2, "backoff": {"duration": "10ms", "factor": 2}},
            },
            "flaky": {
                "http": {"url": target.url("/flaky/local-retry/1")},
                "retryStrategy": {"limit": 3, "retryPolicy": "Always"},
            },
            "no-retry-on-error-policy": {
                "http": {"url": target.url("/status/500")},
                "retryStrategy": {"limit": 3, "retryPolicy": "OnError"},
            },
        }
    )
    done = local(write(tmp_path / "ts.yaml", manifest), "-o", "json")
    assert done.returncode == 1
    nodes = json.loads(done.stdout)["status"]["nodes"]
    assert nodes == {
        "always-500": {
            "phase": "Failed",
            "message": "received non-2xx response code: 500",
            "outputs": {"result": "status 500"},
        },
        "flaky": {"phase": "Succeeded", "outputs": {"result": "ok after 1 failures"}},
        "no-retry-on-error-policy": {
            "phase": "Failed",
            "message": "received non-2xx response code: 500",
            "outputs": {"result": "status 500"},
        },
    }
    attempts = sorted(line for line in done.stderr.splitlines() if "attempt" in line)
    failed_500 = "Failed (received non-2xx response code: 500)"
    assert attempts == [
        f"always-500: attempt 1 {failed_500}, retrying in 0.01s",
        f"always-500: attempt 2 {failed_500}, retrying in 0.02s",
        f"always-500: attempt 3 {failed_500}, not retrying: No more retries left",
        f"flaky: attempt 1 {failed_500}, retrying in 0s",
        f"no-retry-on-error-policy: attempt 1 {failed_500}, not retrying: retryPolicy OnError "
        "does not retry a Failed attempt",
    ]


def test_invalid_retry_strategy_errors_the_node(tmp_path: Path, target: TargetServer) -> None:
    manifest = taskset(
        {
            "n": {
                "http": {"url": target.url("/status/500")},
                "retryStrategy": {"limit": 1, "retryPolicy": "Sometimes"},
            }
        }
    )
    done = local(write(tmp_path / "ts.yaml", manifest), "-o", "json")
    assert done.returncode == 1
    node = json.loads(done.stdout)["status"]["nodes"]["n"]
    assert node["phase"] == "Error"
    assert node["message"].startswith("invalid retryStrategy: ")
    assert "retryPolicy" in node["message"]
