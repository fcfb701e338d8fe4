"""Finding a workflow's artifact repository (agent/kube/artifacts.py) against the simulator.

Argo facts pinned here (argo-workflows):

* workflow/artifactrepositories/artifactrepositories.go ``Resolve``: without a ref, the
  namespace's ``artifact-repositories`` ConfigMap, then the controller's default; ``get``:
  the key is the ref's or the ConfigMap's ``workflows.argoproj.io/default-artifact-repository``
  annotation, a missing ConfigMap or key falls through to the next candidate, the value is
  an ``ArtifactRepository`` YAML document.
* pkg/apis/workflow/v1alpha1/workflow_types.go ``ArtifactRepositoryRefStatus``: the
  controller records the resolved ref with ``namespace``, ``default`` and the repository
  itself under ``artifactRepository`` in ``status.artifactRepositoryRef``.
* config/config.go ``Config.ArtifactRepository``: the controller's default, the
  ``artifactRepository`` key of workflow-controller-configmap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_sim import ApiSimulator, Rule
from agent_sim.samples import configmap, workflow
from kubernetes_asyncio import client

from agent.core.artifacts import ArtifactError
from agent.core.refs import TaskRef
from agent.kube.artifacts import ClusterRepositoryLookup
from agent.kube.client import connect

NS = "team-a"
CONTROLLER_NS = "argo-system"


def repo(bucket: str) -> dict[str, Any]:
    return {"s3": {"bucket": bucket, "endpoint": "127.0.0.1:9", "insecure": True}}


def make_workflow(sim: ApiSimulator, name: str, status_ref: dict[str, Any] | None) -> TaskRef:
    body = workflow(name, namespace=NS)
    if status_ref is not None:
        body["status"]["artifactRepositoryRef"] = status_ref
    created = sim.create_object("workflows", body)
    return TaskRef(NS, name, "node-1", workflow_uid=created["metadata"]["uid"])


def lookup(api: client.ApiClient, **kw: Any) -> ClusterRepositoryLookup:
    return ClusterRepositoryLookup(
        api=api,
        controller_namespace=CONTROLLER_NS,
        controller_configmap="workflow-controller-configmap",
        **kw,
    )


def default_annotation(key: str) -> dict[str, str]:
    return {"workflows.argoproj.io/default-artifact-repository": key}


async def test_the_workflow_status_repository_comes_first(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    sim.create_object(
        "configmaps",
        configmap(
            "artifact-repositories",
            {"r": repo("ns-bucket")},
            namespace=NS,
            **default_annotation("r"),
        ),
    )
    ref = make_workflow(
        sim, "wf", {"namespace": NS, "configMap": "x", "key": "y", "artifactRepository": repo("s")}
    )
    found = await lookup(api).repository(ref=ref)
    assert found.s3.bucket == "s"
    assert found.source == ('workflow "team-a/wf" status.artifactRepositoryRef.artifactRepository')


async def test_a_status_ref_without_the_repository_reads_its_configmap(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    sim.create_object("configmaps", configmap("my-repos", {"k": repo("from-ref")}, namespace=NS))
    ref = make_workflow(sim, "wf", {"namespace": NS, "configMap": "my-repos", "key": "k"})
    assert (await lookup(api).repository(ref=ref)).s3.bucket == "from-ref"


async def test_the_namespace_default_then_the_controller_default(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    sim.create_object(
        "configmaps",
        configmap(
            "workflow-controller-configmap",
            {"artifactRepository": repo("ctl")},
            namespace=CONTROLLER_NS,
        ),
    )
    ref = make_workflow(sim, "wf", None)
    found = await lookup(api, ttl=0).repository(ref=ref)
    assert found.s3.bucket == "ctl"
    assert found.source == (
        'ConfigMap "argo-system/workflow-controller-configmap" key "artifactRepository"'
    )
    # A ConfigMap without the annotated key falls through; with it, it wins.
    sim.create_object(
        "configmaps",
        configmap(
            "artifact-repositories", {"other": repo("o")}, namespace=NS, **default_annotation("r")
        ),
    )
    assert (await lookup(api, ttl=0).repository(ref=ref)).s3.bucket == "ctl"
    sim.patch_object(
        "configmaps",
        "artifact-repositories",
        {"data": {"r": yaml.safe_dump(repo("ns-bucket"))}},
        namespace=NS,
    )
    found = await lookup(api, ttl=0).repository(ref=ref)
    assert found.s3.bucket == "ns-bucket"
    assert found.source == 'ConfigMap "team-a/artifact-repositories" key "r"'


async def test_the_controller_default_in_the_legacy_config_key(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    sim.create_object(
        "configmaps",
        configmap(
            "workflow-controller-configmap",
            {"config": yaml.safe_dump({"artifactRepository": repo("legacy")})},
            namespace=CONTROLLER_NS,
        ),
    )
    ref = make_workflow(sim, "wf", {"default": True})
    assert (await lookup(api).repository(ref=ref)).s3.bucket == "legacy"


async def test_no_repository_anywhere_says_where_it_looked(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    ref = make_workflow(sim, "wf", None)
    with pytest.raises(ArtifactError) as caught:
        await lookup(api).repository(ref=ref)
    assert caught.value.message == (
        'no artifact repository for workflow "team-a/wf": its status names none, namespace '
        '"team-a" has no artifact-repositories ConfigMap with a default entry, and the '
        'controller\'s ConfigMap "argo-system/workflow-controller-configmap" has no '
        "artifactRepository; give the artifact a complete s3 location or configure one"
    )
    assert not caught.value.bad_input


async def test_a_bad_document_is_named(sim: ApiSimulator, api: client.ApiClient) -> None:
    sim.create_object(
        "configmaps",
        configmap(
            "artifact-repositories", {"r": "s3: [unclosed"}, namespace=NS, **default_annotation("r")
        ),
    )
    ref = make_workflow(sim, "wf", None)
    with pytest.raises(ArtifactError) as caught:
        await lookup(api).repository(ref=ref)
    assert caught.value.message.startswith(
        'artifact repository ConfigMap "team-a/artifact-repositories" key "r": invalid YAML'
    )


async def test_a_replaced_workflow_is_not_mistaken_for_the_owner(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    make_workflow(sim, "wf", {"artifactRepository": repo("s")})
    with pytest.raises(ArtifactError) as caught:
        await lookup(api).repository(ref=TaskRef(NS, "wf", "n", workflow_uid="old-uid"))
    assert caught.value.message == (
        'workflow "team-a/wf" (UID old-uid), the owner of this taskset, no longer exists'
    )


async def test_lookups_are_cached_per_workflow(sim: ApiSimulator, api: client.ApiClient) -> None:
    ref = make_workflow(sim, "wf", {"artifactRepository": repo("s")})
    found = lookup(api, ttl=3600)
    for _ in range(5):
        assert (await found.repository(ref=ref)).s3.bucket == "s"
    assert len(sim.requests(verb="get", resource="workflows", name="wf")) == 1


@pytest.mark.parametrize(
    ("rules", "permission"),
    [
        ([], "get workflows.argoproj.io in namespace team-a"),
        (
            [Rule.of("get", "workflows", namespaces=NS)],
            'get configmaps "artifact-repositories" in namespace team-a',
        ),
        (
            [
                Rule.of("get", "workflows", namespaces=NS),
                Rule.of("get", "configmaps", namespaces=NS),
            ],
            'get configmaps "workflow-controller-configmap" in namespace argo-system',
        ),
    ],
)
async def test_a_missing_permission_is_named(
    sim: ApiSimulator, tmp_path: Path, rules: list[Rule], permission: str
) -> None:
    ref = make_workflow(sim, "wf", None)
    sim.add_token("limited", rules, user="limited-agent")
    limited = await connect(kubeconfig=str(sim.kubeconfig(tmp_path / "kc", token="limited")))
    try:
        with pytest.raises(ArtifactError) as caught:
            await lookup(limited).repository(ref=ref)
    finally:
        await limited.close()
    assert f"forbidden; the agent's service account needs '{permission}'" in caught.value.message
