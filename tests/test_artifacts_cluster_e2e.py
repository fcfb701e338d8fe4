"""Output artifacts in the cluster loop: real agent processes, the API simulator, moto_server.

The agent (``python -m agent run``) watches the simulator over HTTP, finds each workflow's
artifact repository as Argo's controller resolved it, reads the credentials' Secrets with
the workflow's authority and streams the target's body into moto; the result lands in the
taskset's status, and each stored object is read back with a plain boto3 client from the
recorded location alone.

Argo facts pinned here (argo-workflows): workflow/artifactrepositories/artifactrepositories.go
``Resolve`` (the namespace's ``artifact-repositories`` ConfigMap by its
``workflows.argoproj.io/default-artifact-repository`` annotation, then the controller's
default); pkg/apis/workflow/v1alpha1/workflow_types.go ``ArtifactRepositoryRefStatus`` (the
resolved repository recorded in the Workflow's ``status.artifactRepositoryRef``);
workflow/controller/taskset.go ``reconcileTaskSet`` (the node's outputs are the task
result's). In per-workflow mode the agent has Argo's agent role only (list/watch tasksets,
patch their status, get secrets): no Workflow or ConfigMap read.
"""

from __future__ import annotations

from typing import Any

import pytest
from agent_sim import ApiSimulator, Rule, service_account_user
from agent_sim.samples import configmap, secret, workflow
from agent_sim.target import pattern

from tests.agentproc import (
    AgentProcess,
    add_argo_agent_token,
    http_task,
    taskset,
    wait_for_nodes,
)
from tests.s3server import S3_ACCESS_KEY, S3_SECRET_KEY, MotoServer
from tests.servers import TargetServer
from tests.test_artifacts_local import BIG, SECRET_REFS, fetch

NS = "argo"
TS = "workflowtasksets"
WAIT = 60.0
CREDS = {"s3-creds": {"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}}


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoServer) -> str:
    return moto_s3.create_bucket("cluster-artifacts")


def repo(moto: MotoServer, bucket: str, **s3: Any) -> dict[str, Any]:
    return {
        "s3": {"bucket": bucket, "endpoint": moto.endpoint, "insecure": True, **SECRET_REFS, **s3}
    }


def artifact_task(url: str, name: str = "body", **s3: Any) -> dict[str, Any]:
    task = http_task(url)
    task["outputs"] = {"artifacts": [{"name": name, **({"s3": s3} if s3 else {})}]}
    return task


def owned_workflow(
    sim: ApiSimulator, name: str, *, status_repository: dict[str, Any] | None = None
) -> str:
    """The owner Workflow, as the controller has persisted it, whose service account
    (``wf-sa``) may get the credentials' Secret."""
    body = workflow(name, namespace=NS, service_account="wf-sa")
    if status_repository is not None:
        body["status"]["artifactRepositoryRef"] = {
            "namespace": NS,
            "configMap": "artifact-repositories",
            "key": "default",
            "artifactRepository": status_repository,
        }
    created = sim.create_object("workflows", body)
    return str(created["metadata"]["uid"])


def setup_secrets(sim: ApiSimulator) -> None:
    sim.create_object("secrets", secret("s3-creds", CREDS["s3-creds"], namespace=NS))
    sim.grant(
        [Rule.of("get", "secrets", namespaces=NS, resource_names="s3-creds")],
        user=service_account_user(NS, "wf-sa"),
    )


async def test_each_level_of_precedence_in_the_cluster(
    sim: ApiSimulator, moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    """Workflow status, namespace ConfigMap, controller default: each workflow's body lands
    where its own level says, with a key from that repository's key format."""
    setup_secrets(sim)
    sim.create_object(
        "configmaps",
        configmap(
            "workflow-controller-configmap",
            {"artifactRepository": repo(moto_s3, bucket, keyFormat="ctl/{{workflow.name}}")},
            namespace="argo-system",
        ),
    )
    uids = {
        "from-status": owned_workflow(
            sim, "from-status", status_repository=repo(moto_s3, bucket, keyFormat="st/{{pod.name}}")
        ),
        "from-controller": owned_workflow(sim, "from-controller"),
    }
    async with AgentProcess(
        sim,
        "--namespace",
        NS,
        "--controller-namespace",
        "argo-system",
        "--artifact-repository-cache-seconds",
        "0",
    ):
        for name, uid in uids.items():
            sim.create_object(
                TS,
                taskset(
                    name,
                    {"n": artifact_task(target.url(f"/pattern/{BIG}?seed=7&length=1"))},
                    owner_uid=uid,
                ),
            )
        status = (await wait_for_nodes(sim, "from-status", ["n"], timeout=WAIT))["n"]
        controller = (await wait_for_nodes(sim, "from-controller", ["n"], timeout=WAIT))["n"]
        # Now the namespace's own default appears: it wins over the controller's.
        sim.create_object(
            "configmaps",
            configmap(
                "artifact-repositories",
                {"mine": repo(moto_s3, bucket, keyFormat="ns/{{workflow.uid}}")},
                namespace=NS,
                **{"workflows.argoproj.io/default-artifact-repository": "mine"},
            ),
        )
        ns_uid = owned_workflow(sim, "from-namespace")
        sim.create_object(
            TS,
            taskset(
                "from-namespace",
                {"n": artifact_task(target.url("/pattern/777?seed=8"))},
                owner_uid=ns_uid,
            ),
        )
        namespace = (await wait_for_nodes(sim, "from-namespace", ["n"], timeout=WAIT))["n"]
    for node in (status, controller, namespace):
        assert node["phase"] == "Succeeded", node
    keys = {
        name: node["outputs"]["artifacts"][0]["s3"]["key"]
        for name, node in (("s", status), ("c", controller), ("n", namespace))
    }
    assert keys == {"s": "st/n/body", "c": "ctl/from-controller/body", "n": f"ns/{ns_uid}/body"}
    big = pattern(BIG, seed=7)
    assert fetch(status["outputs"]["artifacts"][0]) == big
    assert fetch(controller["outputs"]["artifacts"][0]) == big
    assert fetch(namespace["outputs"]["artifacts"][0]) == pattern(777, seed=8)
    assert "result" not in status["outputs"]  # 9 MiB: above the default 1 MiB cap
    assert namespace["outputs"]["result"] == pattern(777, seed=8).decode("utf-8", "replace")


async def test_credentials_follow_the_workflows_authority(
    sim: ApiSimulator, moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    """The repository's credentials are a Secret the workflow's own service account must be
    allowed to get; a denied node fails before its request, its neighbour runs."""
    setup_secrets(sim)
    allowed = owned_workflow(sim, "allowed", status_repository=repo(moto_s3, bucket))
    denied_body = workflow("denied", namespace=NS, service_account="nobody")
    denied_body["status"]["artifactRepositoryRef"] = {"artifactRepository": repo(moto_s3, bucket)}
    denied = str(sim.create_object("workflows", denied_body)["metadata"]["uid"])
    async with AgentProcess(sim, "--namespace", NS) as agent:
        sim.create_object(
            TS,
            taskset(
                "allowed", {"n": artifact_task(target.url("/respond?body=a"))}, owner_uid=allowed
            ),
        )
        sim.create_object(
            TS,
            taskset(
                "denied", {"n": artifact_task(target.url("/respond?body=d"))}, owner_uid=denied
            ),
        )
        ok = (await wait_for_nodes(sim, "allowed", ["n"], timeout=WAIT))["n"]
        refused = (await wait_for_nodes(sim, "denied", ["n"], timeout=WAIT))["n"]
        scraped = (await agent.get("/metrics")).text
        logs = agent.logs()
    assert 'argo_agent_artifacts_total{result="stored"} 1.0' in scraped
    assert 'argo_agent_artifacts_total{result="refused"} 1.0' in scraped
    assert 'argo_agent_artifacts_total{result="store_error"} 0.0' in scraped
    assert "argo_agent_artifact_bytes_total 1.0" in scraped
    assert ok["phase"] == "Succeeded"
    assert fetch(ok["outputs"]["artifacts"][0]) == b"a"
    assert refused == {
        "phase": "Error",
        "message": "artifact 'body': s3.accessKeySecret: service account \"argo/nobody\" may "
        'not get secret "s3-creds"',
    }
    assert not moto_s3.object_exists(bucket, "denied/n/body")
    assert S3_SECRET_KEY not in logs


async def test_per_workflow_mode_with_argos_agent_role(
    sim: ApiSimulator, moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    """``--workflow`` runs with Argo's agent role: a node that needs the repository fails
    naming the permission it lacks; a complete own location works; plain nodes are
    unaffected."""
    sim.create_object("secrets", secret("s3-creds", CREDS["s3-creds"], namespace=NS))
    add_argo_agent_token(sim, "argo-agent-role", namespace=NS)
    own = {"endpoint": moto_s3.endpoint, "bucket": bucket, "insecure": True, **SECRET_REFS}
    tasks = {
        "needs-repo": artifact_task(target.url("/respond?body=r")),
        "own-location": artifact_task(target.url("/respond?body=o"), key="solo/own", **own),
        "plain": http_task(target.url("/respond?body=p")),
    }
    sim.create_object(TS, taskset("solo", tasks))
    async with AgentProcess(sim, "--namespace", NS, "--workflow", "solo", token="argo-agent-role"):
        nodes = await wait_for_nodes(sim, "solo", list(tasks), timeout=WAIT)
    assert nodes["needs-repo"]["phase"] == "Error"
    assert nodes["needs-repo"]["message"] == (
        "artifact 'body': cannot read workflow \"argo/solo\": forbidden; the agent's service "
        "account needs 'get workflows.argoproj.io in namespace argo' to find the artifact "
        "repository (or give the artifact a complete s3 location)"
    )
    assert nodes["own-location"]["phase"] == "Succeeded"
    assert fetch(nodes["own-location"]["outputs"]["artifacts"][0]) == b"o"
    assert nodes["plain"] == {"phase": "Succeeded", "outputs": {"result": "p"}}


async def test_two_processes_store_every_body_once(
    sim: ApiSimulator, moto_s3: MotoServer, bucket: str, target: TargetServer
) -> None:
    setup_secrets(sim)
    uid = owned_workflow(sim, "sharded", status_repository=repo(moto_s3, bucket))
    tasks = {f"n{i}": artifact_task(target.url(f"/pattern/{1000 + i}?seed={i}")) for i in range(12)}
    async with AgentProcess(sim, "--namespace", NS, "--processes", "2", "--membership", "none"):
        sim.create_object(TS, taskset("sharded", tasks, owner_uid=uid))
        nodes = await wait_for_nodes(sim, "sharded", list(tasks), timeout=WAIT)
    for i in range(12):
        node = nodes[f"n{i}"]
        assert node["phase"] == "Succeeded", node
        record = node["outputs"]["artifacts"][0]
        assert record["s3"]["key"] == f"sharded/n{i}/body"
        assert fetch(record) == pattern(1000 + i, seed=i)
