"""The Helm chart in ``charts/argo-http-agent``: rendered, linted and validated offline.

Rendering and linting use the real Helm v4 library (``helm-python-sdk``), so templates,
``values.schema.json`` and ``helm lint --strict`` behave exactly as ``helm install`` would.
Every rendered manifest is validated against the official Kubernetes schemas
(``kubernetes-validate --strict``) for the oldest Kubernetes the chart supports and the
newest bundled one. The ServiceMonitor and the PrometheusRule are custom resources those
schemas do not cover: the ServiceMonitor is checked against the Service it must select, the
PrometheusRule against the plain rules file it is made of (which ``tests/test_monitoring.py``
checks with promtool and a real Prometheus); the dashboard's ConfigMap carries the dashboard
JSON unchanged.

The rendered objects are then held to what the agent needs: least-privilege RBAC (a Role
per namespace or one ClusterRole, plus a Role for the members' Leases in the lease namespace
only), active-active replicas (a PodDisruptionBudget and topology spread once there are
several), probes on /healthz and /readyz, a locked-down pod, and an environment the agent's
own settings loader accepts with the intended values.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "argo-http-agent"
RELEASE, NAMESPACE = "agent", "argo"
FULLNAME = "agent-argo-http-agent"
OLDEST_KUBERNETES = "1.25.0"  # Chart.yaml kubeVersion

TASKSET_RULES = [
    {
        "apiGroups": ["argoproj.io"],
        "resources": ["workflowtasksets"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtasksets/status"], "verbs": ["patch"]},
]
SECRETS_RULE = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
# secretAuthority: workflow (the default): the owner Workflow names the service account, and a
# SubjectAccessReview (cluster-scoped: a ClusterRole even in namespaced mode) asks about it.
WORKFLOWS_RULE = {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get"]}
REVIEWS_ROLE = f"{FULLNAME}-reviews"
REVIEW_RULES = [
    {
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["subjectaccessreviews"],
        "verbs": ["create"],
    }
]
# What a member does with Leases: its own (create, update, delete) and the others' (watch).
LEASE_RULES = [
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "list", "watch", "create", "update", "delete"],
    }
]
LEASE_ROLE = f"{FULLNAME}-leases"
POLICY_ROLE = f"{FULLNAME}-policies"
POLICY_RULES = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]}]
# Output artifacts (artifacts.enabled, the default): the namespace's default repository where
# tasksets are served, the controller's ConfigMap in its namespace only (agent/kube/artifacts.py).
REPOSITORIES_RULE = {
    "apiGroups": [""],
    "resources": ["configmaps"],
    "verbs": ["get"],
    "resourceNames": ["artifact-repositories"],
}
ARTIFACTS_ROLE = f"{FULLNAME}-artifacts"

# The value sets the chart is rendered, linted and validated with.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "all-namespaces": {"allNamespaces": True},
    "per-namespace": {"namespaces": ["team-a", "team-b"]},
    "secrets-restricted": {"rbac": {"secrets": {"resourceNames": ["orders-api", "hooks-key"]}}},
    "secrets-disabled": {"rbac": {"secrets": {"enabled": False}}},
    "agent-authority": {"secretAuthority": "agent"},
    "own-service-account": {
        "serviceAccount": {"create": False, "name": "argo-agent"},
        "rbac": {"create": False},
    },
    "monitor-and-pdb": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "podDisruptionBudget": {"enabled": True},
    },
    "one-replica": {"replicaCount": 1},
    "no-outbound-policies": {"outboundPolicies": False},
    "artifacts-off": {"artifacts": {"enabled": False}},
    "artifacts-off-agent-authority": {"artifacts": {"enabled": False}, "secretAuthority": "agent"},
    "controller-elsewhere": {
        "artifacts": {
            "controllerNamespace": "argo-system",
            "controllerConfigMap": "wf-controller",
            "repositoryCacheSeconds": 2.5,
        }
    },
    "three-replicas": {"replicaCount": 3},
    "single-agent": {"replicaCount": 1, "membership": "none"},
    "leases-elsewhere": {
        "replicaCount": 3,
        "leaseNamespace": "argo-agents",
        "leaseDuration": "30s",
        "group": "shared-agents",
        "allNamespaces": True,
        "podDisruptionBudget": {"minAvailable": 2},
        "topologySpread": {"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 2},
    },
    "dashboard-and-rules": {
        "serviceMonitor": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
        "prometheusRule": {"enabled": True},
    },
    "everything": {
        "image": {
            "repository": "registry.example.com/argo-http-agent",
            "digest": "sha256:" + "a" * 64,
        },
        "imagePullSecrets": [{"name": "registry"}],
        "instanceID": "team-a",
        "namespaces": ["team-a"],
        "taskWorkers": 2048,
        "processes": 4,
        "patchRate": "2s",
        "patchMode": "tick",
        "defaultTimeout": 12.5,
        "maxResultBytes": 4194304,
        "denyNetworks": ["169.254.169.254/32", "10.0.0.0/8"],
        "redelivery": "never",
        "log": {"format": "text", "level": "debug"},
        "extraCACertificates": {
            "enabled": True,
            "secretName": "argo-workflows-agent-ca-certificates",
        },
        "rbac": {"secrets": {"resourceNames": ["orders-api"]}},
        "serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s"},
        "grafanaDashboard": {
            "enabled": True,
            "labels": {"grafana_dashboard": "1", "team": "platform"},
            "annotations": {"grafana_folder": "Argo"},
        },
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "kube-prometheus-stack"},
            "runbookBaseURL": "https://git.example.com/argo-http-agent/blob/main/",
        },
        "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"},
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"example.com/owner": "platform"},
        "podLabels": {"team": "platform"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "argo", "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/arch",
                                    "operator": "In",
                                    "values": ["amd64", "arm64"],
                                }
                            ]
                        }
                    ]
                }
            }
        },
        "extraEnv": [
            {"name": "ARGO_PLUGIN_ADDRESSES", "value": '["http://localhost:4355"]'},
            {"name": "ARGO_PLUGIN_NAMES", "value": '["hello"]'},
        ],
        "extraContainers": [
            {
                "name": "hello-plugin",
                "image": "example/hello-plugin:1.0",
                "ports": [{"containerPort": 4355}],
            }
        ],
        "extraVolumes": [{"name": "plugin-token", "secret": {"secretName": "hello-plugin-token"}}],
        "extraVolumeMounts": [
            {"name": "plugin-token", "mountPath": "/var/run/argo/hello", "readOnly": True}
        ],
    },
}


def _require(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(
            f"the deployment tests need {package!r} (pip install {package}): {exc}", pytrace=False
        )


@pytest.fixture(scope="module")
def helm() -> Iterator[ModuleType]:
    module = _require("helm_python", "helm-python-sdk")
    module.disable_logging()  # the Go library logs `fail` messages on stderr
    yield module


@pytest.fixture(scope="module")
def chart(helm: ModuleType) -> Iterator[Any]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def kubernetes_validate() -> ModuleType:
    return _require("kubernetes_validate.utils", "kubernetes-validate")


Manifests = list[dict[str, Any]]


def render(chart: Any, values: dict[str, Any]) -> tuple[Manifests, str]:
    """The chart's objects and its NOTES for ``values``, as ``helm install`` would create them."""
    rendered: dict[str, str] = chart.render(
        copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE, is_install=True
    )
    objects = [
        document
        for path, text in sorted(rendered.items())
        if path.endswith((".yaml", ".yml"))
        for document in yaml.safe_load_all(text)
        if document
    ]
    notes = next((text for path, text in rendered.items() if path.endswith("NOTES.txt")), "")
    return objects, notes


@pytest.fixture(scope="module")
def rendered(chart: Any) -> dict[str, Manifests]:
    return {name: render(chart, values)[0] for name, values in VALUE_SETS.items()}


def only(objects: Manifests, kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def of_kind(objects: Manifests, kind: str) -> Manifests:
    return [o for o in objects if o["kind"] == kind]


def named(objects: Manifests, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def taskset_roles(objects: Manifests, kind: str = "Role") -> Manifests:
    """The Roles (or bindings) granting tasksets and Secrets: all but the Leases' and the
    outbound policies' ones."""
    others = (LEASE_ROLE, POLICY_ROLE, ARTIFACTS_ROLE)
    return [o for o in of_kind(objects, kind) if o["metadata"]["name"] not in others]


def agent_container(objects: Manifests) -> dict[str, Any]:
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "agent"]
    return dict(container)


def plain_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


# --- Helm: lint, schema, render -------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_chart_lints_clean_in_strict_mode(helm: ModuleType, value_set: str) -> None:
    report = helm.lint(
        CHART,
        copy.deepcopy(VALUE_SETS[value_set]),
        strict=True,
        namespace=NAMESPACE,
        kube_version="1.30.0",
    )
    # Severity 1 is informational ("icon is recommended"); warnings and errors fail.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_values_schema_is_draft_07_and_accepts_the_defaults() -> None:
    jsonschema = _require("jsonschema", "jsonschema")
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(defaults)) == []
    # Every top-level value is described by the schema (no value escapes validation).
    assert set(defaults) <= set(schema["properties"])


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"taskWorkers": "many"}, "/taskWorkers"),
        ({"taskWorkers": 0}, "/taskWorkers"),
        ({"processes": 65}, "/processes"),
        ({"patchRate": "10 seconds"}, "/patchRate"),
        ({"redelivery": "sometimes"}, "/redelivery"),
        ({"denyNetworks": ["metadata.google.internal"]}, "/denyNetworks/0"),
        ({"namespaces": ["Team_A"]}, "/namespaces/0"),
        ({"metricsPort": 70000}, "/metricsPort"),
        ({"log": {"format": "xml"}}, "/log/format"),
        ({"taskworkers": 16}, "taskworkers"),
        ({"rbac": {"secrets": {"resourceNames": "orders-api"}}}, "/rbac/secrets/resourceNames"),
        (
            {"podDisruptionBudget": {"maxUnavailable": "half"}},
            "/podDisruptionBudget/maxUnavailable",
        ),
        ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        (
            {"securityContext": {"readOnlyRootFilesystem": "yes"}},
            "/securityContext/readOnlyRootFilesystem",
        ),
        ({"resources": {"limits": {"memory": ["1Gi"]}}}, "/resources/limits/memory"),
        ({"grafanaDashboard": {"enabled": "yes"}}, "/grafanaDashboard/enabled"),
        ({"grafanaDashboard": {"namespace": "Monitoring"}}, "/grafanaDashboard/namespace"),
        ({"prometheusRule": {"runbookBaseURL": "docs/"}}, "/prometheusRule/runbookBaseURL"),
        ({"prometheusRule": {"labels": {"release": 1}}}, "/prometheusRule/labels/release"),
    ],
)
def test_values_schema_rejects_bad_values_naming_them(
    helm: ModuleType, chart: Any, values: dict[str, Any], named: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.validate_schema(values)
    assert named in str(caught.value)
    # And `helm install` stops before rendering anything.
    with pytest.raises(helm.HelmValuesError, match=re.escape(named)):
        render(chart, values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"allNamespaces": True, "namespaces": ["team-a"]}, "allNamespaces and namespaces"),
        ({"terminationGracePeriodSeconds": 25}, "must exceed shutdownGrace"),
        ({"shutdownGrace": 40}, "must exceed shutdownGrace"),
        ({"serviceAccount": {"create": False}}, "serviceAccount.name is required"),
    ],
)
def test_contradictory_values_fail_with_a_message(
    helm: ModuleType, chart: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render(chart, values)


# --- every manifest is a valid Kubernetes object ---------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_rendered_manifest_validates_strictly(
    rendered: dict[str, Manifests], kubernetes_validate: ModuleType, value_set: str
) -> None:
    objects = rendered[value_set]
    assert objects
    problems = []
    for kube_version in (OLDEST_KUBERNETES, kubernetes_validate.latest_version()):
        for obj in objects:
            if obj["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # a custom resource: checked against its Service below
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            try:
                kubernetes_validate.validate(obj, kube_version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                problems.append(f"{name} invalid for {kube_version} at {where}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{name}: {exc.message}")
    assert problems == []


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_object_is_labelled_and_namespaced_consistently(
    rendered: dict[str, Manifests], value_set: str
) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    served = VALUE_SETS[value_set].get("namespaces") or [NAMESPACE]
    lease_namespace = VALUE_SETS[value_set].get("leaseNamespace") or NAMESPACE
    for obj in rendered[value_set]:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/name"] == "argo-http-agent"
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"]
        elif obj["kind"] in ("Role", "RoleBinding") and obj["metadata"]["name"] == LEASE_ROLE:
            assert obj["metadata"]["namespace"] == lease_namespace
        elif obj["kind"] in ("Role", "RoleBinding") and obj["metadata"]["name"] == POLICY_ROLE:
            assert obj["metadata"]["namespace"] == NAMESPACE  # the policies live there
        elif obj["kind"] in ("Role", "RoleBinding") and obj["metadata"]["name"] == ARTIFACTS_ROLE:
            controller = VALUE_SETS[value_set].get("artifacts", {})
            assert obj["metadata"]["namespace"] == controller.get("controllerNamespace", "argo")
        elif obj["kind"] in ("Role", "RoleBinding"):
            assert obj["metadata"]["namespace"] in served
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE


# --- RBAC: least privilege, namespaced or cluster-wide -------------------------------------


def test_defaults_grant_a_role_in_the_release_namespace_only(
    rendered: dict[str, Manifests],
) -> None:
    objects = rendered["defaults"]
    assert sorted(o["kind"] for o in objects) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "Role",
        "Role",
        "Role",
        "RoleBinding",
        "RoleBinding",
        "RoleBinding",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    role = named(objects, "Role", FULLNAME)
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [*TASKSET_RULES, SECRETS_RULE, WORKFLOWS_RULE, REPOSITORIES_RULE]
    binding = named(objects, "RoleBinding", FULLNAME)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": FULLNAME,
    }
    account = only(objects, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert plain_env(agent_container(objects))["ARGO_AGENT_NAMESPACES"] == NAMESPACE


def test_all_namespaces_grants_a_cluster_role_and_no_roles(rendered: dict[str, Manifests]) -> None:
    objects = rendered["all-namespaces"]
    assert taskset_roles(objects) == [] and taskset_roles(objects, "RoleBinding") == []
    rules = named(objects, "ClusterRole", FULLNAME)["rules"]
    assert rules == [*TASKSET_RULES, SECRETS_RULE, WORKFLOWS_RULE, REPOSITORIES_RULE]
    binding = named(objects, "ClusterRoleBinding", FULLNAME)
    assert binding["roleRef"]["kind"] == "ClusterRole"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    ]
    env = plain_env(agent_container(objects))
    assert env["ARGO_AGENT_ALL_NAMESPACES"] == "true"
    assert "ARGO_AGENT_NAMESPACES" not in env


def test_namespaced_modes_never_grant_cluster_roles(rendered: dict[str, Manifests]) -> None:
    """Except the one for SubjectAccessReviews, a cluster-scoped API that grants nothing."""
    for value_set, objects in rendered.items():
        if not VALUE_SETS[value_set].get("allNamespaces"):
            roles = of_kind(objects, "ClusterRole")
            bindings = of_kind(objects, "ClusterRoleBinding")
            assert [r["metadata"]["name"] for r in roles + bindings] in (
                [], [REVIEWS_ROLE, REVIEWS_ROLE]), value_set  # fmt: skip
            assert all(r["rules"] == REVIEW_RULES for r in roles), value_set


def test_the_workflows_authority_needs_workflows_and_reviews_and_the_agents_none(
    rendered: dict[str, Manifests],
) -> None:
    """secretAuthority: workflow (default) grants `get workflows` where Secrets are granted
    and `create subjectaccessreviews` cluster-wide, bound to the agent's account; `agent`
    (or no access to Secrets at all) grants neither."""
    for value_set in ("defaults", "per-namespace", "all-namespaces"):
        objects = rendered[value_set]
        assert named(objects, "ClusterRole", REVIEWS_ROLE)["rules"] == REVIEW_RULES
        binding = named(objects, "ClusterRoleBinding", REVIEWS_ROLE)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": REVIEWS_ROLE,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
        ]
        assert plain_env(agent_container(objects))["ARGO_AGENT_SECRET_AUTHORITY"] == "workflow"
    for value_set in ("agent-authority", "secrets-disabled"):
        objects = rendered[value_set]
        assert not of_kind(objects, "ClusterRole") and not of_kind(objects, "ClusterRoleBinding")
        # Artifacts (on by default) still need the Workflow: its artifact repository.
        assert named(objects, "Role", FULLNAME)["rules"] == [
            *TASKSET_RULES,
            *([SECRETS_RULE] if value_set == "agent-authority" else []),
            WORKFLOWS_RULE,
            REPOSITORIES_RULE,
        ]
    env = plain_env(agent_container(rendered["agent-authority"]))
    assert env["ARGO_AGENT_SECRET_AUTHORITY"] == "agent"
    assert named(rendered["artifacts-off-agent-authority"], "Role", FULLNAME)["rules"] == [
        *TASKSET_RULES,
        SECRETS_RULE,
    ]


def test_a_namespace_list_grants_a_role_in_each_for_one_service_account(
    rendered: dict[str, Manifests],
) -> None:
    objects = rendered["per-namespace"]
    roles = {r["metadata"]["namespace"]: r for r in taskset_roles(objects)}
    bindings = {b["metadata"]["namespace"]: b for b in taskset_roles(objects, "RoleBinding")}
    assert set(roles) == set(bindings) == {"team-a", "team-b"}
    for namespace, binding in bindings.items():
        assert roles[namespace]["rules"] == [
            *TASKSET_RULES,
            SECRETS_RULE,
            WORKFLOWS_RULE,
            REPOSITORIES_RULE,
        ]
        assert binding["roleRef"]["name"] == roles[namespace]["metadata"]["name"]
        # The ServiceAccount lives in the release namespace, not in the served ones.
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
        ]
    assert only(objects, "ServiceAccount")["metadata"]["namespace"] == NAMESPACE
    assert plain_env(agent_container(objects))["ARGO_AGENT_NAMESPACES"] == "team-a,team-b"


def test_secrets_can_be_restricted_by_name_or_not_granted(rendered: dict[str, Manifests]) -> None:
    restricted = named(rendered["secrets-restricted"], "Role", FULLNAME)["rules"]
    assert restricted == [
        *TASKSET_RULES,
        {**SECRETS_RULE, "resourceNames": ["orders-api", "hooks-key"]},
        WORKFLOWS_RULE,
        REPOSITORIES_RULE,
    ]
    assert named(rendered["secrets-disabled"], "Role", FULLNAME)["rules"] == [
        *TASKSET_RULES,
        WORKFLOWS_RULE,
        REPOSITORIES_RULE,
    ]


def test_rbac_and_service_account_can_be_brought_by_the_operator(
    rendered: dict[str, Manifests],
) -> None:
    objects = rendered["own-service-account"]
    assert sorted(o["kind"] for o in objects) == ["Deployment", "PodDisruptionBudget", "Service"]
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "argo-agent"


def test_no_value_set_grants_more_than_the_agent_uses(rendered: dict[str, Manifests]) -> None:
    allowed = {
        ("argoproj.io", "workflowtasksets"): {"get", "list", "watch"},
        ("argoproj.io", "workflowtasksets/status"): {"patch"},
        ("", "secrets"): {"get"},
        ("argoproj.io", "workflows"): {"get"},
        ("authorization.k8s.io", "subjectaccessreviews"): {"create"},
        ("coordination.k8s.io", "leases"): {"get", "list", "watch", "create", "update", "delete"},
        # the outbound policies (release namespace), artifact repositories (named ones)
        ("", "configmaps"): {"get", "list", "watch"},
    }
    for value_set, objects in rendered.items():
        for role in of_kind(objects, "Role") + of_kind(objects, "ClusterRole"):
            for rule in role["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        # No wildcards, no writes to a taskset's spec, no patch of a Lease
                        # (renewals are conditional PUTs), nothing cluster-wide for Leases.
                        assert set(rule["verbs"]) <= allowed[(group, resource)], value_set


# --- the Deployment ------------------------------------------------------------------------


def test_pod_runs_non_root_read_only_with_no_capabilities(rendered: dict[str, Manifests]) -> None:
    for value_set, objects in rendered.items():
        pod = only(objects, "Deployment")["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        security = agent_container(objects)["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, value_set
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["runAsNonRoot"] is True
        # Read-only root: /tmp is the one writable place, an emptyDir with a size limit.
        mounts = {m["mountPath"]: m["name"] for m in agent_container(objects)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes[mounts["/tmp"]]["emptyDir"]["sizeLimit"]


def test_probes_use_the_health_endpoints_on_the_metrics_port(
    rendered: dict[str, Manifests],
) -> None:
    container = agent_container(rendered["defaults"])
    (port,) = container["ports"]
    assert port == {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    env = plain_env(container)
    assert env["ARGO_AGENT_METRICS_PORT"] == "9090"
    assert env["ARGO_AGENT_METRICS_HOST"] == "0.0.0.0"


def test_agent_runs_the_run_command_with_requests_and_limits(
    rendered: dict[str, Manifests],
) -> None:
    deployment = only(rendered["defaults"], "Deployment")
    container = agent_container(rendered["defaults"])
    assert container["image"] == "argo-http-agent:0.1.0"  # the chart's appVersion
    assert container["args"] == ["run"]  # the image's ENTRYPOINT is argo-http-agent
    assert set(container["resources"]) == {"requests", "limits"}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]
    # Two members by default; an upgrade adds the new pod before an old one leaves.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }


def test_termination_grace_exceeds_the_agents_shutdown_grace(
    rendered: dict[str, Manifests],
) -> None:
    for objects in rendered.values():
        pod = only(objects, "Deployment")["spec"]["template"]["spec"]
        grace = float(plain_env(agent_container(objects))["ARGO_AGENT_SHUTDOWN_GRACE"])
        assert pod["terminationGracePeriodSeconds"] > grace


def test_pod_identity_comes_from_the_downward_api(rendered: dict[str, Manifests]) -> None:
    fields = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in agent_container(rendered["defaults"])["env"]
        if "valueFrom" in e
    }
    assert fields == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}


def test_everything_set_reaches_the_pod(rendered: dict[str, Manifests]) -> None:
    objects = rendered["everything"]
    values = VALUE_SETS["everything"]
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    container = agent_container(objects)
    env = plain_env(container)
    assert container["image"] == f"{values['image']['repository']}@{values['image']['digest']}"
    assert env["ARGO_INSTANCE_ID"] == "team-a"
    assert env["ARGO_PLUGIN_NAMES"] == '["hello"]'
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), "an environment variable is set twice"
    # Extra CAs: Argo's Secret at Argo's mount point, and the agent told where it is.
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    ca_mount = mounts["ca-certificates"]
    assert ca_mount == {
        "name": "ca-certificates",
        "mountPath": "/etc/ssl/certs/ca-certificates",
        "readOnly": True,
    }
    assert (
        volumes["ca-certificates"]["secret"]["secretName"] == "argo-workflows-agent-ca-certificates"
    )
    assert env["ARGO_AGENT_CA_DIR"] == ca_mount["mountPath"]
    assert mounts["plugin-token"]["mountPath"] == "/var/run/argo/hello"
    assert [c["name"] for c in pod["containers"]] == ["agent", "hello-plugin"]
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"):
        assert pod[key] == values[key]
    template_metadata = only(objects, "Deployment")["spec"]["template"]["metadata"]
    assert template_metadata["annotations"] == values["podAnnotations"]
    assert template_metadata["labels"]["team"] == "platform"


# --- the environment is what the agent's settings loader accepts ----------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rendered_environment_loads_into_the_agents_settings(
    rendered: dict[str, Manifests], value_set: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.service.settings import Settings, load_settings

    values = VALUE_SETS[value_set]
    env = plain_env(agent_container(rendered[value_set]))
    for name in ("KUBECONFIG", "ARGO_WORKFLOW_NAME", "ARGO_AGENT_ID", "ARGO_AGENT_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POD_NAME", "agent-argo-http-agent-6d5f8b7c9-x2x4k")
    monkeypatch.setenv("POD_NAMESPACE", NAMESPACE)

    settings = load_settings()

    assert settings.all_namespaces is bool(values.get("allNamespaces"))
    expected_namespaces = (
        [] if values.get("allNamespaces") else values.get("namespaces", [NAMESPACE])
    )
    assert settings.namespaces == expected_namespaces
    assert settings.instance_id == values.get("instanceID", "")
    assert settings.task_workers == values.get("taskWorkers", 512)
    assert settings.processes == values.get("processes", 1)
    assert settings.max_patches_in_flight == 2
    assert settings.patch_rate == {"2s": 2.0}.get(values.get("patchRate", ""), 10.0)
    assert settings.patch_mode == values.get("patchMode", "eager")
    assert settings.default_timeout == values.get("defaultTimeout", 30)
    assert settings.max_result_bytes == values.get("maxResultBytes", 1048576)
    assert settings.deny_networks == values.get(
        "denyNetworks", ["169.254.169.254/32", "fd00:ec2::254/128"]
    )
    assert settings.redelivery == values.get("redelivery", "idempotent")
    assert settings.log_format == values.get("log", {}).get("format", "json")
    assert settings.metrics_port == 9090
    assert settings.shutdown_grace == 25
    assert settings.agent_id == "agent-argo-http-agent-6d5f8b7c9-x2x4k"
    if values.get("extraCACertificates", {}).get("enabled"):
        assert settings.ca_dir == "/etc/ssl/certs/ca-certificates"
    assert settings.plugin_names == (["hello"] if value_set == "everything" else [])
    if "membership" in Settings.model_fields:  # the agent's side of replicas (issue 13)
        assert settings.membership == values.get("membership", "lease")
    artifacts = values.get("artifacts", {})
    assert settings.controller_namespace == artifacts.get("controllerNamespace", "argo")
    assert settings.controller_configmap == artifacts.get(
        "controllerConfigMap", "workflow-controller-configmap"
    )
    assert settings.artifact_repository_cache_seconds == artifacts.get("repositoryCacheSeconds", 10)


# --- Service, ServiceMonitor, PodDisruptionBudget -------------------------------------------


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_service_exposes_metrics_of_ready_and_unready_pods(rendered: dict[str, Manifests]) -> None:
    objects = rendered["defaults"]
    service = only(objects, "Service")
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _selects(service["spec"]["selector"], pod_labels)
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert service["spec"]["publishNotReadyAddresses"] is True


_PROM_DURATION = re.compile(r"^(?:(\d+)(ms|s|m|h|d|w|y))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def _seconds(duration: str) -> float:
    assert _PROM_DURATION.match(duration), f"not a Prometheus duration: {duration!r}"
    return sum(
        int(n) * _UNIT_SECONDS[unit] for n, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    )


@pytest.mark.parametrize("value_set", ["monitor-and-pdb", "dashboard-and-rules", "everything"])
def test_service_monitor_scrapes_the_metrics_service(
    rendered: dict[str, Manifests], value_set: str
) -> None:
    objects = rendered[value_set]
    monitor = only(objects, "ServiceMonitor")
    service = only(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) == {"jobLabel", "namespaceSelector", "selector", "endpoints"}
    # The job label takes the Service's name label: the job the alert rules select.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == RULES_JOB
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert set(monitor["spec"]["selector"]) == {"matchLabels"}
    assert _selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (endpoint["path"], endpoint["scheme"]) == ("/metrics", "http")
    # Prometheus refuses a scrape timeout longer than the interval.
    assert _seconds(endpoint["scrapeTimeout"]) <= _seconds(endpoint["interval"])
    for key, value in VALUE_SETS[value_set]["serviceMonitor"].get("labels", {}).items():
        assert monitor["metadata"]["labels"][key] == value


# --- the Grafana dashboard and the alert rules ----------------------------------------------

DASHBOARD_FILE = CHART / "files" / "argo-http-agent-dashboard.json"
RULES_FILE = CHART / "files" / "argo-http-agent.rules.yaml"
RULES_JOB = "argo-http-agent"


def test_dashboard_and_rules_are_off_by_default(rendered: dict[str, Manifests]) -> None:
    for value_set in ("defaults", "monitor-and-pdb"):
        assert not of_kind(rendered[value_set], "ConfigMap")
        assert not of_kind(rendered[value_set], "PrometheusRule")


@pytest.mark.parametrize("value_set", ["dashboard-and-rules", "everything"])
def test_dashboard_config_map_carries_the_dashboard_for_grafanas_sidecar(
    rendered: dict[str, Manifests], value_set: str
) -> None:
    config_map = only(rendered[value_set], "ConfigMap")
    assert config_map["metadata"]["name"] == f"{FULLNAME}-dashboard"
    wanted = VALUE_SETS[value_set]["grafanaDashboard"]
    # The sidecar's default label unless replaced, and whatever the operator adds.
    for key, value in wanted.get("labels", {"grafana_dashboard": "1"}).items():
        assert config_map["metadata"]["labels"][key] == value
    assert config_map["metadata"].get("annotations", {}) == wanted.get("annotations", {})
    (name,) = config_map["data"]
    assert name.endswith(".json")
    assert json.loads(config_map["data"][name]) == json.loads(DASHBOARD_FILE.read_text())


def test_dashboard_config_map_can_go_to_grafanas_namespace(chart: Any) -> None:
    objects, _ = render(chart, {"grafanaDashboard": {"enabled": True, "namespace": "monitoring"}})
    assert only(objects, "ConfigMap")["metadata"]["namespace"] == "monitoring"


def test_dashboard_queries_select_the_rules_job_through_its_variables() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) == {"datasource", "job", "instance"}
    assert variables["job"]["current"]["value"] == RULES_JOB
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'job="$job"' in target["expr"], (panel["title"], target["expr"])


@pytest.mark.parametrize("value_set", ["dashboard-and-rules", "everything"])
def test_prometheus_rule_holds_the_plain_rules_file(
    rendered: dict[str, Manifests], value_set: str
) -> None:
    rule = only(rendered[value_set], "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    plain = yaml.safe_load(RULES_FILE.read_text())
    base = VALUE_SETS[value_set]["prometheusRule"].get("runbookBaseURL", "")
    for group in plain["groups"]:
        for entry in group["rules"]:
            entry["annotations"]["runbook_url"] = base + entry["annotations"]["runbook_url"]
    assert rule["spec"] == plain
    for key, value in VALUE_SETS[value_set]["prometheusRule"].get("labels", {}).items():
        assert rule["metadata"]["labels"][key] == value
    for group in rule["spec"]["groups"]:
        for entry in group["rules"]:
            assert f'job="{RULES_JOB}"' in entry["expr"], entry["alert"]


def test_pod_disruption_budget_covers_the_pod_and_never_blocks_a_drain_by_default(
    rendered: dict[str, Manifests],
) -> None:
    objects = rendered["monitor-and-pdb"]
    budget = only(objects, "PodDisruptionBudget")
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _selects(budget["spec"]["selector"]["matchLabels"], pod_labels)
    assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
    custom = only(rendered["everything"], "PodDisruptionBudget")["spec"]
    assert custom["minAvailable"] == "50%" and "maxUnavailable" not in custom
    assert not of_kind(rendered["defaults"], "ServiceMonitor")


# --- replicas: membership, Leases, disruption budget, spread -------------------------------


@pytest.mark.parametrize(
    ("value_set", "replicas"), [("one-replica", 1), ("defaults", 2), ("three-replicas", 3)]
)
def test_replica_count_sets_replicas_budget_and_spread(
    rendered: dict[str, Manifests], value_set: str, replicas: int
) -> None:
    objects = rendered[value_set]
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == replicas
    pod = deployment["spec"]["template"]["spec"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    budgets = of_kind(objects, "PodDisruptionBudget")
    if replicas == 1:
        # One replica: any budget would block drains or allow everything; nothing to spread.
        assert budgets == []
        assert "topologySpreadConstraints" not in pod
        return
    (budget,) = budgets
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    assert pod["topologySpreadConstraints"] == [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector},
        }
    ]
    # The spread and the budget count exactly this release's pods.
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(selector, pod_labels)


def test_budget_and_spread_follow_their_values(rendered: dict[str, Manifests]) -> None:
    objects = rendered["leases-elsewhere"]
    assert only(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    assert "maxUnavailable" not in only(objects, "PodDisruptionBudget")["spec"]
    (spread,) = only(objects, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["maxSkew"]) == ("topology.kubernetes.io/zone", 2)
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"


def _lease_role_and_binding(objects: Manifests) -> tuple[dict[str, Any], dict[str, Any]]:
    return named(objects, "Role", LEASE_ROLE), named(objects, "RoleBinding", LEASE_ROLE)


@pytest.mark.parametrize(
    ("value_set", "lease_namespace"),
    [("defaults", NAMESPACE), ("three-replicas", NAMESPACE), ("leases-elsewhere", "argo-agents")],
)
def test_members_may_use_leases_in_the_lease_namespace_only(
    rendered: dict[str, Manifests], value_set: str, lease_namespace: str
) -> None:
    objects = rendered[value_set]
    role, binding = _lease_role_and_binding(objects)
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == lease_namespace
    assert role["rules"] == LEASE_RULES
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": LEASE_ROLE,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    ]
    # No other role mentions Leases (not even the cluster-wide one).
    for other in of_kind(objects, "Role") + of_kind(objects, "ClusterRole"):
        if other is not role:
            assert all("leases" not in rule["resources"] for rule in other["rules"])


@pytest.mark.parametrize("value_set", ["defaults", "all-namespaces", "per-namespace"])
def test_outbound_policies_are_read_from_the_release_namespace_only(
    rendered: dict[str, Manifests], value_set: str
) -> None:
    objects = rendered[value_set]
    role, binding = named(objects, "Role", POLICY_ROLE), named(objects, "RoleBinding", POLICY_ROLE)
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == POLICY_RULES
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": POLICY_ROLE,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    ]
    # No other role lists or watches ConfigMaps (not even the cluster-wide one); artifacts get
    # named ones only.
    for other in of_kind(objects, "Role") + of_kind(objects, "ClusterRole"):
        if other is not role:
            for rule in other["rules"]:
                if "configmaps" in rule["resources"]:
                    assert rule["verbs"] == ["get"] and rule["resourceNames"]
    assert plain_env(agent_container(objects))["ARGO_AGENT_OUTBOUND_POLICIES"] == "on"


def test_outbound_policies_off_grants_nothing(rendered: dict[str, Manifests]) -> None:
    objects = rendered["no-outbound-policies"]
    roles = of_kind(objects, "Role") + of_kind(objects, "RoleBinding")
    assert [r for r in roles if r["metadata"]["name"] == POLICY_ROLE] == []
    assert plain_env(agent_container(objects))["ARGO_AGENT_OUTBOUND_POLICIES"] == "off"


def test_without_membership_or_rbac_no_lease_role(rendered: dict[str, Manifests]) -> None:
    for value_set in ("single-agent", "own-service-account"):
        roles = of_kind(rendered[value_set], "Role") + of_kind(rendered[value_set], "RoleBinding")
        assert [r for r in roles if r["metadata"]["name"] == LEASE_ROLE] == [], value_set


@pytest.mark.parametrize(
    ("value_set", "expected"),
    [
        (
            "defaults",
            {
                "ARGO_AGENT_MEMBERSHIP": "lease",
                "ARGO_AGENT_LEASE_NAMESPACE": NAMESPACE,
                "ARGO_AGENT_LEASE_DURATION": "15s",
                "ARGO_AGENT_GROUP": FULLNAME,  # two releases in one namespace never mix
            },
        ),
        (
            "leases-elsewhere",
            {
                "ARGO_AGENT_MEMBERSHIP": "lease",
                "ARGO_AGENT_LEASE_NAMESPACE": "argo-agents",
                "ARGO_AGENT_LEASE_DURATION": "30s",
                "ARGO_AGENT_GROUP": "shared-agents",
            },
        ),
        ("single-agent", {"ARGO_AGENT_MEMBERSHIP": "none"}),
    ],
)
def test_membership_values_reach_the_agent(
    rendered: dict[str, Manifests], value_set: str, expected: dict[str, str]
) -> None:
    env = plain_env(agent_container(rendered[value_set]))
    membership = {k: v for k, v in env.items() if k in _MEMBERSHIP_ENV}
    assert membership == expected


_MEMBERSHIP_ENV = {
    "ARGO_AGENT_MEMBERSHIP",
    "ARGO_AGENT_LEASE_NAMESPACE",
    "ARGO_AGENT_LEASE_DURATION",
    "ARGO_AGENT_GROUP",
}


def test_a_single_agent_is_recreated_never_rolled(rendered: dict[str, Manifests]) -> None:
    objects = rendered["single-agent"]
    assert only(objects, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert of_kind(objects, "PodDisruptionBudget") == []


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_pod_knows_its_name_and_namespace_from_the_downward_api(
    rendered: dict[str, Manifests], value_set: str
) -> None:
    """A member's identity is POD_NAME (plus a per-start suffix); the chart never runs the
    per-workflow mode (no ARGO_WORKFLOW_NAME), so every pod is a shared agent."""
    container = agent_container(rendered[value_set])
    fields = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container["env"]
        if "valueFrom" in e
    }
    assert fields == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    assert "ARGO_WORKFLOW_NAME" not in plain_env(container)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"membership": "none"}, "replicaCount 2 needs membership: lease"),
        ({"membership": "none", "replicaCount": 3}, "replicaCount 3 needs membership: lease"),
        ({"replicas": 1}, "replicas was renamed replicaCount"),
        (
            {"membership": "none", "replicaCount": 1, "strategy": {"type": "RollingUpdate"}},
            "strategy RollingUpdate needs membership: lease",
        ),
    ],
)
def test_replica_values_that_would_duplicate_tasks_fail(
    helm: ModuleType, chart: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render(chart, values)


@pytest.mark.parametrize(
    ("values", "named_path"),
    [
        ({"replicaCount": 0}, "/replicaCount"),
        ({"replicaCount": "2"}, "/replicaCount"),
        ({"membership": "raft"}, "/membership"),
        ({"leaseDuration": "15"}, "/leaseDuration"),
        ({"group": "-agents"}, "/group"),
        ({"leaseNamespace": "Argo_Agents"}, "/leaseNamespace"),
        ({"topologySpread": {"whenUnsatisfiable": "Maybe"}}, "/topologySpread/whenUnsatisfiable"),
        ({"topologySpread": {"maxSkew": 0}}, "/topologySpread/maxSkew"),
    ],
)
def test_replica_values_are_checked_by_the_schema(
    helm: ModuleType, chart: Any, values: dict[str, Any], named_path: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.validate_schema(values)
    assert named_path in str(caught.value)


def test_artifacts_read_the_controllers_configmap_in_its_namespace_only(
    rendered: dict[str, Manifests],
) -> None:
    for value_set, namespace, name in (
        ("defaults", "argo", "workflow-controller-configmap"),
        ("controller-elsewhere", "argo-system", "wf-controller"),
    ):
        objects = rendered[value_set]
        role = named(objects, "Role", ARTIFACTS_ROLE)
        assert role["metadata"]["namespace"] == namespace
        assert role["rules"] == [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
             "resourceNames": [name]}
        ]  # fmt: skip
        binding = named(objects, "RoleBinding", ARTIFACTS_ROLE)
        assert binding["metadata"]["namespace"] == namespace
        assert binding["roleRef"]["name"] == ARTIFACTS_ROLE
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
        ]
    off = rendered["artifacts-off"]
    assert not [o for o in off if o["metadata"]["name"] == ARTIFACTS_ROLE]
    assert REPOSITORIES_RULE not in named(off, "Role", FULLNAME)["rules"]


# --- NOTES ---------------------------------------------------------------------------------


def test_notes_explain_the_controller_setting_and_the_rbac(chart: Any) -> None:
    _, notes = render(chart, {})
    assert "disableAgentPodCreation" in notes
    assert "workflow-controller-configmap" in notes
    assert '{"data":{"disableAgentPodCreation":"true"}}' in notes
    assert "workflowtasksets/status  patch" in notes
    assert "leases                   get, list, watch, create, update, delete" in notes
    assert f"kubectl -n {NAMESPACE} get leases -l argo-http-agent.io/group={FULLNAME}" in notes
    assert "WARNING" not in notes
    # The controller's fixed requeue delay (controller.go newWorkflowTaskSetInformer:
    # AddRateLimited; rate_limiters.go: DEFAULT_REQUEUE_TIME) bounds what a workflow sees.
    assert "DEFAULT_REQUEUE_TIME=2s" in notes
    assert "up to that long" in notes

    assert "subjectaccessreviews     create, cluster-wide" in notes
    _, agent_authority = render(chart, VALUE_SETS["agent-authority"])
    assert "subjectaccessreviews" not in agent_authority
    _, restricted = render(chart, VALUE_SETS["secrets-restricted"])
    assert "(only orders-api, hooks-key)" in restricted
    _, cluster_wide = render(chart, {"allNamespaces": True})
    assert "every namespace (ClusterRole" in cluster_wide
    _, single = render(chart, VALUE_SETS["single-agent"])
    assert "has no Lease" in single and "leases " not in single
