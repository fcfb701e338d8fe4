"""Contract tests: a real kubectl, which no one here wrote, against the simulator over TLS.

The Lease and taskset contract tests use kubernetes_asyncio, the agent's own client; a
second, independent client catches what both sides of one library could agree on by
mistake. kubectl lists, watches, patches and replaces Leases as an operator of the
replicas would (``kubectl get leases -l argo-http-agent.io/group=...`` shows each
member's holder), fails on a stale ``resourceVersion`` as it would against a cluster,
and reads and patches tasksets, including their ``status`` subresource.

kubectl is found on PATH (or at ``$ARGO_AGENT_TEST_KUBECTL``); where it is missing and
the tests run as root on Debian, a session fixture installs Debian's
``kubernetes-client`` package once (``apt-get update && apt-get install -y
kubernetes-client``). Otherwise, or when the install fails, the tests are skipped with
the reason (shown by ``-ra``). kubectl sends a bearer token only over TLS, so the
simulator serves HTTPS with a throw-away CA (``tests.servers.TestCA``). The simulator
serves no OpenAPI, hence ``--validate=false`` on commands that send a file.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agent_sim import ApiSimulator, SimulatorTls
from kubernetes_asyncio import client

from agent.kube.client import connect
from tests.agentproc import TOKEN
from tests.servers import TestCA

# The first test's set-up may install kubectl (apt-get): allow for it.
pytestmark = pytest.mark.timeout(900)

NS = "agents"
GROUP_LABEL = "argo-http-agent.io/group"
SELECTOR = f"{GROUP_LABEL}=g1"
# Every kubectl run is bounded: a hung client fails its test instead of stalling.
RUN_TIMEOUT = 60.0


def _install_kubectl() -> str:
    """Install Debian's kubernetes-client; returns "" on success, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "kubectl is not installed and installing it needs root (apt-get)"
    if shutil.which("apt-get") is None:
        return "kubectl is not installed and there is no apt-get to install it with"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "kubernetes-client"],
    )
    for step in steps:
        try:
            done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"{' '.join(step)} failed: {err}"
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            return f"{' '.join(step)} exited {done.returncode}: {tail}"
    return ""


@dataclass(frozen=True)
class Kubectl:
    path: str
    minor: int


@pytest.fixture(scope="session")
def kubectl_bin() -> Kubectl:
    path = os.environ.get("ARGO_AGENT_TEST_KUBECTL") or shutil.which("kubectl")
    if path is None:
        why = _install_kubectl()
        path = shutil.which("kubectl")
        if path is None:
            pytest.skip(f"no kubectl: {why or 'kubernetes-client installed no kubectl'}")
    done = subprocess.run(
        [path, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"{path} does not run: {done.stderr.strip()}")
    version = json.loads(done.stdout)["clientVersion"]
    return Kubectl(path, int(str(version["minor"]).rstrip("+")))


@pytest.fixture
async def tls_sim(test_ca: TestCA) -> AsyncIterator[ApiSimulator]:
    tls = SimulatorTls(
        cert_chain_pem=b"".join(blob.bytes() for blob in test_ca.server_cert.cert_chain_pems),
        private_key_pem=test_ca.server_cert.private_key_pem.bytes(),
        ca_pem=test_ca.pem,
    )
    async with ApiSimulator(tls=tls) as server:
        server.add_token(TOKEN)
        yield server


@dataclass
class Run:
    code: int
    out: str
    err: str


class Cli:
    """kubectl with its own kubeconfig and HOME (so its discovery cache is the test's)."""

    def __init__(self, binary: Kubectl, sim: ApiSimulator, home: Path) -> None:
        self.binary = binary
        self.home = home
        kubeconfig = sim.kubeconfig(home / "kubeconfig", token=TOKEN, namespace=NS)
        self.env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}
        self.env["KUBECONFIG"] = str(kubeconfig)

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            self.binary.path,
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def __call__(self, *args: str) -> Run:
        process = await self.start(*args)
        try:
            out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())

    async def ok(self, *args: str) -> str:
        run = await self(*args)
        assert run.code == 0, f"kubectl {' '.join(args)} exited {run.code}: {run.err}"
        return run.out

    def write(self, name: str, obj: dict[str, Any]) -> str:
        path = self.home / name
        path.write_text(json.dumps(obj))
        return str(path)


@pytest.fixture
def kubectl(kubectl_bin: Kubectl, tls_sim: ApiSimulator, tmp_path: Path) -> Cli:
    return Cli(kubectl_bin, tls_sim, tmp_path)


@pytest.fixture
async def leases(kubectl: Cli) -> AsyncIterator[client.CoordinationV1Api]:
    """The members' side: kubernetes_asyncio over the same TLS kubeconfig."""
    api = await connect(kubeconfig=kubectl.env["KUBECONFIG"])
    try:
        yield client.CoordinationV1Api(api)
    finally:
        await api.close()


def member_lease(name: str, holder: str, *, group: str = "g1") -> dict[str, Any]:
    now = "2025-03-04T05:06:07.123456Z"
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "labels": {GROUP_LABEL: group}},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": now,
            "renewTime": now,
        },
    }


def table(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


async def test_get_leases_by_group_shows_each_holder(
    kubectl: Cli, leases: client.CoordinationV1Api
) -> None:
    """``kubectl get leases -n NS -l argo-http-agent.io/group=g1`` lists the group's
    members with the holder column a real server prints (Name, Holder, Age), and no
    Lease of another group."""
    await leases.create_namespaced_lease(NS, member_lease("g1-pod-a-x1", "pod-a-x1"))
    await leases.create_namespaced_lease(NS, member_lease("g1-pod-b-y2", "pod-b-y2"))
    await leases.create_namespaced_lease(NS, member_lease("g2-pod-c-z3", "pod-c-z3", group="g2"))
    rows = table(await kubectl.ok("get", "leases", "-n", NS, "-l", SELECTOR))
    assert rows[0] == ["NAME", "HOLDER", "AGE"]
    assert [row[:2] for row in rows[1:]] == [
        ["g1-pod-a-x1", "pod-a-x1"],
        ["g1-pod-b-y2", "pod-b-y2"],
    ]
    listed = json.loads(await kubectl.ok("get", "leases", "-n", NS, "-l", SELECTOR, "-o", "json"))
    assert [item["spec"]["renewTime"] for item in listed["items"]] == [
        "2025-03-04T05:06:07.123456Z"
    ] * 2


async def test_get_leases_watch_sees_a_renewal(
    kubectl: Cli, leases: client.CoordinationV1Api
) -> None:
    """``kubectl get leases -w`` (list, then watch from the list's version) prints the
    existing member, then the change another client makes."""
    await leases.create_namespaced_lease(NS, member_lease("g1-pod-a-x1", "pod-a-x1"))
    process = await kubectl.start(
        "get", "leases", "-n", NS, "-l", SELECTOR, "-w", "--output-watch-events"
    )
    assert process.stdout is not None
    lines: list[list[str]] = []

    async def until(*expected: str) -> None:
        while not any(line[: len(expected)] == list(expected) for line in lines):
            raw = await process.stdout.readline()  # type: ignore[union-attr]
            assert raw, f"kubectl ended early: {lines}"
            lines.append(raw.decode().split())

    try:
        await asyncio.wait_for(until("ADDED", "g1-pod-a-x1", "pod-a-x1"), 30)
        current = await leases.read_namespaced_lease("g1-pod-a-x1", NS)
        current.spec.holder_identity = "pod-b-y2"
        await leases.replace_namespaced_lease("g1-pod-a-x1", NS, current)
        await asyncio.wait_for(until("MODIFIED", "g1-pod-a-x1", "pod-b-y2"), 30)
    finally:
        process.kill()
        await process.wait()
    assert lines[0] == ["EVENT", "NAME", "HOLDER", "AGE"]


async def test_stale_resource_version_is_a_conflict_for_kubectl(
    kubectl: Cli, tls_sim: ApiSimulator, leases: client.CoordinationV1Api
) -> None:
    """``kubectl patch`` and ``kubectl replace`` naming a stale ``resourceVersion`` fail
    with the server's Conflict and change nothing; ``kubectl create`` of an existing
    Lease fails with AlreadyExists; a replace with the current version succeeds. kubectl
    sends Leases from a file as JSON (not protobuf), which the simulator reads."""
    created = await leases.create_namespaced_lease(NS, member_lease("g1-pod-a-x1", "pod-a-x1"))
    stale = created.metadata.resource_version
    current = await leases.patch_namespaced_lease(
        "g1-pod-a-x1", NS, {"spec": {"renewTime": "2025-03-04T05:06:08.000000Z"}}
    )
    modified = "the object has been modified; please apply your changes to the latest version"

    patch = json.dumps({"metadata": {"resourceVersion": stale}, "spec": {"holderIdentity": "x"}})
    run = await kubectl("patch", "lease", "g1-pod-a-x1", "-n", NS, "--type=merge", "-p", patch)
    assert run.code != 0
    assert "Error from server (Conflict)" in run.err and modified in run.err

    body = member_lease("g1-pod-a-x1", "thief")
    body["metadata"]["resourceVersion"] = stale
    run = await kubectl("replace", "--validate=false", "-f", kubectl.write("stale.json", body))
    assert run.code != 0
    assert "Conflict" in run.err and modified in run.err

    run = await kubectl(
        "create",
        "--validate=false",
        "-f",
        kubectl.write("dup.json", member_lease("g1-pod-a-x1", "x")),
    )
    assert run.code != 0
    assert "AlreadyExists" in run.err and "already exists" in run.err

    stored = await leases.read_namespaced_lease("g1-pod-a-x1", NS)
    assert stored.spec.holder_identity == "pod-a-x1"
    assert stored.metadata.resource_version == current.metadata.resource_version

    body["metadata"]["resourceVersion"] = current.metadata.resource_version
    body["spec"]["holderIdentity"] = "pod-b-y2"
    await kubectl.ok("replace", "--validate=false", "-f", kubectl.write("fresh.json", body))
    assert (
        await leases.read_namespaced_lease("g1-pod-a-x1", NS)
    ).spec.holder_identity == "pod-b-y2"
    (update,) = [r for r in tls_sim.requests(verb="update", resource="leases") if r.status == 200]
    assert update.content_type.startswith("application/json")


async def test_delete_leases_by_group(kubectl: Cli, leases: client.CoordinationV1Api) -> None:
    """``kubectl delete leases -l`` removes the group's Leases and nothing else."""
    await leases.create_namespaced_lease(NS, member_lease("g1-pod-a-x1", "pod-a-x1"))
    await leases.create_namespaced_lease(NS, member_lease("g2-pod-c-z3", "pod-c-z3", group="g2"))
    out = await kubectl.ok("delete", "leases", "-n", NS, "-l", SELECTOR)
    assert 'lease.coordination.k8s.io "g1-pod-a-x1" deleted' in out
    remaining = await leases.list_namespaced_lease(NS)
    assert [item.metadata.name for item in remaining.items] == ["g2-pod-c-z3"]


async def test_tasksets_get_and_status_patch(
    kubectl: Cli, kubectl_bin: Kubectl, tls_sim: ApiSimulator
) -> None:
    """kubectl reads tasksets (the custom resource's default Name/Age table) and patches
    their ``status`` subresource: the status changes, the spec and ``generation`` do
    not; a status in a patch of the main resource is ignored, as for any custom
    resource with a status subresource."""
    tls_sim.create_object(
        "workflowtasksets",
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTaskSet",
            "metadata": {"name": "wf-1"},
            "spec": {"tasks": {"n1": {"name": "n1", "http": {"url": "http://127.0.0.1:9"}}}},
        },
        namespace=NS,
    )
    rows = table(await kubectl.ok("get", "workflowtasksets", "-n", NS))
    assert rows[0] == ["NAME", "AGE"] and rows[1][0] == "wf-1"
    status = json.dumps({"status": {"nodes": {"n1": {"phase": "Succeeded", "message": "ok"}}}})
    ignored = await kubectl.ok("patch", "wfts", "wf-1", "-n", NS, "--type=merge", "-p", status)
    assert "no change" in ignored
    assert "status" not in tls_sim.get_object("workflowtasksets", "wf-1", namespace=NS)
    if kubectl_bin.minor < 24:
        pytest.skip(f"kubectl 1.{kubectl_bin.minor} has no --subresource (added in 1.24)")
    await kubectl.ok(
        "patch", "wfts", "wf-1", "-n", NS, "--subresource=status", "--type=merge", "-p", status
    )
    stored = tls_sim.get_object("workflowtasksets", "wf-1", namespace=NS)
    assert stored["status"] == {"nodes": {"n1": {"phase": "Succeeded", "message": "ok"}}}
    assert stored["metadata"]["generation"] == 1
    phase = await kubectl.ok(
        "get", "wfts", "wf-1", "-n", NS, "--subresource=status", "-o",
        "jsonpath={.status.nodes.n1.phase}",
    )  # fmt: skip
    assert phase == "Succeeded"
