"""The WorkflowTaskSet CRD in ``crds/``: structural, valid, and faithful to Argo's tasksets.

No API server can run here, so the CRD is checked the way the API server would check it:

* the CRD object against the official ``apiextensions.k8s.io/v1`` schema
  (``kubernetes-validate --strict``, for the oldest and the newest bundled Kubernetes);
* its ``openAPIV3Schema`` against the rules for *structural schemas* from the Kubernetes
  documentation (a checker written here, itself tested on schemas the API server rejects);
* sample tasksets against that schema with a JSON-schema validator extended with what
  Kubernetes adds (``format: byte``, ``x-kubernetes-int-or-string``, ``nullable``): a taskset
  as Argo's controller writes it must be accepted, malformed ones rejected at the right path;
* pruning as the API server does it: template fields the agent never reads must survive
  (plugins receive the whole template), unknown status fields must not.
"""

from __future__ import annotations

import base64
import binascii
import copy
import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from agent.core.model import NodePhase, NodeResult, Outputs, Parameter, dump, parse_template

ROOT = Path(__file__).resolve().parents[1]
CRD_PATH = ROOT / "crds" / "argoproj.io_workflowtasksets.yaml"
FIXTURES = Path(__file__).resolve().parent / "deploy_fixtures"
ARGO_SAMPLE = FIXTURES / "taskset-argo-controller.yaml"
FRESH_SAMPLE = FIXTURES / "taskset-just-created.yaml"


def _require(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(
            f"the deployment tests need {package!r} (pip install {package}): {exc}", pytrace=False
        )


@pytest.fixture(scope="module")
def jsonschema() -> ModuleType:
    return _require("jsonschema", "jsonschema")


@pytest.fixture(scope="module")
def kubernetes_validate() -> ModuleType:
    return _require("kubernetes_validate.utils", "kubernetes-validate")


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path} holds no object"
    return document


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return _load(CRD_PATH)


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


# --- the CRD object ------------------------------------------------------------------------


def test_crd_names_scope_and_status_subresource_match_argo(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "workflowtasksets.argoproj.io"
    assert spec["group"] == "argoproj.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "WorkflowTaskSet",
        "listKind": "WorkflowTaskSetList",
        "plural": "workflowtasksets",
        "singular": "workflowtaskset",
        "shortNames": ["wfts"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    # The agent patches results on the status subresource, as Argo's agent does.
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("kube_version", ["1.25.0", "latest"])
def test_crd_is_a_valid_apiextensions_v1_object(
    crd: dict[str, Any], kubernetes_validate: ModuleType, kube_version: str
) -> None:
    if kube_version == "latest":
        kube_version = kubernetes_validate.latest_version()
    try:
        kubernetes_validate.validate(crd, kube_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        pytest.fail(f"CRD invalid for Kubernetes {kube_version} at {where}: {exc.message}")


# --- structural schema ---------------------------------------------------------------------

# Every keyword of apiextensions.k8s.io/v1 JSONSchemaProps.
_KNOWN_KEYWORDS = frozenset(
    {
        "$ref", "$schema", "additionalItems", "additionalProperties", "allOf", "anyOf",
        "default", "definitions", "dependencies", "description", "enum", "example",
        "exclusiveMaximum", "exclusiveMinimum", "externalDocs", "format", "id", "items",
        "maxItems", "maxLength", "maxProperties", "maximum", "minItems", "minLength",
        "minProperties", "minimum", "multipleOf", "not", "nullable", "oneOf", "pattern",
        "patternProperties", "properties", "required", "title", "type", "uniqueItems",
        "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string",
        "x-kubernetes-list-map-keys", "x-kubernetes-list-type", "x-kubernetes-map-type",
        "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations",
    }
)  # fmt: skip
# Accepted by the type, refused by the API server's CRD validation.
_UNSUPPORTED = ("$ref", "id", "definitions", "dependencies", "patternProperties", "additionalItems")
_OPENAPI_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
# Not allowed inside a junctor (structural rule 3), except in the int-or-string patterns.
_NOT_IN_JUNCTORS = ("description", "type", "default", "additionalProperties", "nullable")
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


def structural_errors(schema: dict[str, Any]) -> list[str]:
    """Why ``schema`` is not a structural schema; empty when it is.

    Follows "Specifying a structural schema" (Kubernetes docs, CustomResourceDefinitions)
    and the static checks of the CRD validation that go with it.
    """
    errors: list[str] = []
    if schema.get("type") != "object":
        errors.append("openAPIV3Schema.type: must be object at the root")
    if schema.get("nullable"):
        errors.append("openAPIV3Schema.nullable: cannot be true at the root")
    _check_node(schema, "openAPIV3Schema", errors, specified=True, in_junctor=False)
    metadata = schema.get("properties", {}).get("metadata")
    if isinstance(metadata, dict):
        _check_metadata(metadata, errors)
    return errors


def _check_node(
    node: object, path: str, errors: list[str], *, specified: bool, in_junctor: bool
) -> None:
    if not isinstance(node, dict):
        errors.append(f"{path}: must be a schema object")
        return
    for key in node:
        if key not in _KNOWN_KEYWORDS:
            errors.append(f"{path}.{key}: unknown keyword")
    for key in _UNSUPPORTED:
        if key in node:
            errors.append(f"{path}.{key}: not supported in a CRD schema")
    if node.get("uniqueItems") is True:
        errors.append(f"{path}.uniqueItems: cannot be true (quadratic validation)")
    if node.get("x-kubernetes-preserve-unknown-fields") is False:
        errors.append(f"{path}.x-kubernetes-preserve-unknown-fields: must be true or absent")

    type_ = node.get("type", "")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if type_ and type_ not in _OPENAPI_TYPES:
        errors.append(f"{path}.type: {type_!r} is not an OpenAPI v3 type")
    # Rule 1: every specified node has a type, unless int-or-string or preserving.
    if specified and not type_ and not int_or_string and not preserve:
        errors.append(f"{path}.type: must not be empty for a specified field")
    if int_or_string and type_:
        errors.append(f"{path}.type: must be empty with x-kubernetes-int-or-string")
    if type_ == "array" and "items" not in node:
        errors.append(f"{path}.items: must be specified for an array")
    for key, needed in (
        ("x-kubernetes-map-type", "object"),
        ("x-kubernetes-embedded-resource", "object"),
        ("x-kubernetes-list-type", "array"),
    ):
        if key in node and type_ != needed:
            errors.append(f"{path}.type: must be {needed} with {key}")
    if node.get("x-kubernetes-list-map-keys") and node.get("x-kubernetes-list-type") != "map":
        errors.append(f"{path}.x-kubernetes-list-type: must be map with list-map-keys")

    additional = node.get("additionalProperties")
    if additional is False:
        errors.append(f"{path}.additionalProperties: cannot be false")
    if additional is not None and node.get("properties"):
        errors.append(f"{path}.additionalProperties: mutually exclusive with properties")

    if in_junctor:
        for key in _NOT_IN_JUNCTORS:
            if key in node:
                errors.append(f"{path}.{key}: must not be set inside allOf/anyOf/oneOf/not")

    # Fields and items named inside a junctor only constrain values; they specify nothing.
    children: list[tuple[str, object]] = [
        (f"{path}.properties[{name}]", child) for name, child in node.get("properties", {}).items()
    ]
    if isinstance(additional, dict):
        children.append((f"{path}.additionalProperties", additional))
    items = node.get("items")
    if isinstance(items, list):
        errors.append(f"{path}.items: must be a schema object, not an array")
    elif items is not None:
        children.append((f"{path}.items", items))
    for where, child in children:
        _check_node(child, where, errors, specified=not in_junctor, in_junctor=in_junctor)
    _check_junctors(node, path, errors, int_or_string=int_or_string)


def _check_junctors(
    node: dict[str, Any], path: str, errors: list[str], *, int_or_string: bool
) -> None:
    for junctor in _JUNCTORS:
        if junctor not in node:
            continue
        branches = [node[junctor]] if junctor == "not" else node[junctor]
        if int_or_string and _is_int_or_string_pattern(junctor, branches):
            continue
        for index, branch in enumerate(branches):
            where = f"{path}.{junctor}[{index}]"
            _check_node(branch, where, errors, specified=False, in_junctor=True)
            if not isinstance(branch, dict):
                continue
            # Rule 2: whatever a junctor constrains is also specified outside it.
            for name in branch.get("properties", {}):
                if name not in node.get("properties", {}):
                    errors.append(f"{where}.properties[{name}]: not specified outside {junctor}")
            if "items" in branch and "items" not in node:
                errors.append(f"{where}.items: not specified outside {junctor}")


def _is_int_or_string_pattern(junctor: str, branches: list[Any]) -> bool:
    if junctor == "anyOf":
        return branches == _INT_OR_STRING
    if junctor == "allOf" and branches and isinstance(branches[0], dict):
        return branches[0] == {"anyOf": _INT_OR_STRING}
    return False


def _check_metadata(metadata: dict[str, Any], errors: list[str]) -> None:
    # Rule 4: only restrictions on metadata.name and metadata.generateName.
    where = "openAPIV3Schema.properties[metadata]"
    extra = set(metadata) - {"type", "description", "properties"}
    extra |= set(metadata.get("properties", {})) - {"name", "generateName"}
    if extra:
        errors.append(f"{where}: only name and generateName may be restricted, not {sorted(extra)}")


def test_crd_schema_is_structural(schema: dict[str, Any]) -> None:
    assert structural_errors(schema) == []


_OBJECT = {"type": "object"}


@pytest.mark.parametrize(
    ("broken", "complaint"),
    [
        ({"type": "object", "properties": {"a": {}}}, "properties[a].type: must not be empty"),
        ({"type": "object", "properties": {"a": {"type": "object", "additionalProperties": False}}},
         "additionalProperties: cannot be false"),
        ({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": _OBJECT},
                                                 "additionalProperties": _OBJECT}}},
         "mutually exclusive with properties"),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, "items: must be specified"),
        ({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True,
                                                 "items": {"type": "string"}}}},
         "uniqueItems: cannot be true"),
        ({"type": "object", "properties": {"a": {"$ref": "#/definitions/x"}}},
         "$ref: not supported"),
        ({"type": "object", "properties": {"a": {"type": "object", "patternProperties": {}}}},
         "patternProperties: not supported"),
        ({"type": "object", "properties": {"a": {"type": "null"}}}, "is not an OpenAPI v3 type"),
        ({"type": "object", "properties": {"a": {"type": "object",
                                                 "x-kubernetes-preserve-unknown-fields": False}}},
         "must be true or absent"),
        ({"type": "object", "properties": {"a": {"type": "string", "anyOf": [
            {"type": "string", "maxLength": 3}, {"type": "string", "pattern": "^x"}]}}},
         "anyOf[0].type: must not be set inside"),
        ({"type": "object", "properties": {"a": {"type": "object", "oneOf": [
            {"properties": {"b": {"maxLength": 3}}}]}}},
         "properties[b]: not specified outside oneOf"),
        ({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
            "labels": {"type": "object"}}}}}, "only name and generateName"),
        ({"type": "string"}, "must be object at the root"),
        ({"type": "object", "properties": {"a": {"type": "string", "enumeration": ["x"]}}},
         "enumeration: unknown keyword"),
    ],
)  # fmt: skip
def test_structural_checker_refuses_what_the_api_server_refuses(
    broken: dict[str, Any], complaint: str
) -> None:
    errors = structural_errors(broken)
    assert any(complaint in error for error in errors), errors


def test_structural_checker_accepts_the_documented_exceptions() -> None:
    exceptions = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string",
                                                                   "maxLength": 40}}},
            "port": {"x-kubernetes-int-or-string": True, "anyOf": _INT_OR_STRING},
            "raw": {"x-kubernetes-preserve-unknown-fields": True},
            "size": {"type": "string", "anyOf": [{"pattern": "^a"}, {"maxLength": 3}]},
        },
    }  # fmt: skip
    assert structural_errors(exceptions) == []


# --- validating tasksets against the schema ------------------------------------------------


def _is_base64(value: object) -> bool:
    if isinstance(value, str):
        base64.b64decode(value, validate=True)
    return True


def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


def _is_int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def _kubernetes_validator(jsonschema: ModuleType, schema: dict[str, Any]) -> Any:
    """A validator with the Kubernetes additions to OpenAPI v3 validation."""

    def int_or_string(validator: Any, enabled: bool, instance: Any, _schema: Any) -> Iterator[Any]:
        if enabled and (isinstance(instance, bool) or not isinstance(instance, int | str)):
            yield jsonschema.ValidationError(f"{instance!r} is neither an integer nor a string")

    def nullable_type(validator: Any, types: Any, instance: Any, node: Any) -> Iterator[Any]:
        if instance is None and node.get("nullable") is True:
            return
        yield from jsonschema.Draft4Validator.VALIDATORS["type"](validator, types, instance, node)

    formats = jsonschema.FormatChecker(formats=())
    formats.checks("byte", raises=(binascii.Error, ValueError))(_is_base64)
    formats.checks("int32")(_is_int32)
    formats.checks("int64")(_is_int64)

    validator_class = jsonschema.validators.extend(
        jsonschema.Draft4Validator,
        {"type": nullable_type, "x-kubernetes-int-or-string": int_or_string},
    )
    return validator_class(schema, format_checker=formats)


def _errors(jsonschema: ModuleType, schema: dict[str, Any], taskset: object) -> list[str]:
    validator = _kubernetes_validator(jsonschema, schema)
    return sorted(
        "/".join(str(part) for part in error.absolute_path) + ": " + error.message
        for error in validator.iter_errors(taskset)
    )


def test_the_validator_applies_the_kubernetes_extensions(jsonschema: ModuleType) -> None:
    extended = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True, "anyOf": _INT_OR_STRING},
            "note": {"type": "string", "nullable": True},
            "data": {"type": "string", "format": "byte"},
            "count": {"type": "integer", "format": "int32"},
        },
    }
    good = {"port": "http", "note": None, "data": "aGk=", "count": 2**31 - 1}
    assert _errors(jsonschema, extended, good) == []
    assert _errors(jsonschema, extended, {"port": 80}) == []
    bad = {"port": 1.5, "data": "h!", "count": 2**31}
    assert [e.split(":")[0] for e in _errors(jsonschema, extended, bad)] == [
        "count",
        "data",
        "port",
        "port",  # neither alternative of anyOf, and not an integer or a string
    ]
    assert _errors(jsonschema, {"type": "string"}, None) != []  # null only where nullable


@pytest.mark.parametrize("sample", [ARGO_SAMPLE, FRESH_SAMPLE], ids=lambda p: p.stem)
def test_tasksets_written_by_argo_are_accepted(
    jsonschema: ModuleType, schema: dict[str, Any], sample: Path
) -> None:
    assert _errors(jsonschema, schema, _load(sample)) == []


def test_the_argo_sample_is_what_the_agent_reads(schema: dict[str, Any]) -> None:
    # The sample is realistic for the agent too: every template and result parses with the
    # agent's own model (so these CRD tests and the agent agree on the shapes).
    taskset = _load(ARGO_SAMPLE)
    templates = {node: parse_template(raw) for node, raw in taskset["spec"]["tasks"].items()}
    assert sum(t.http is not None for t in templates.values()) == 4
    assert [t.plugin for t in templates.values() if t.plugin] == [
        {"hello": {"text": "hello world", "repeat": 2}}
    ]
    results = {
        node: NodeResult.model_validate(raw) for node, raw in taskset["status"]["nodes"].items()
    }
    assert set(results) == set(templates)
    assert {str(r.phase) for r in results.values()} == {"Succeeded", "Failed", "Running", "Error"}


@pytest.mark.parametrize("phase", list(NodePhase))
def test_every_result_the_agent_can_write_is_accepted(
    jsonschema: ModuleType, schema: dict[str, Any], phase: NodePhase
) -> None:
    result = NodeResult(
        phase=phase,
        message="a message",
        progress="1/2",
        outputs=Outputs(result="", exit_code="0", parameters=[Parameter(name="p", value="v")]),
    )
    taskset = _load(FRESH_SAMPLE)
    taskset["status"] = {"nodes": {"http-template-q8zvd-3211417233": dump(result)}}
    assert _errors(jsonschema, schema, taskset) == []


_HTTP_ID = "order-pipeline-7xk2p-1360214327"
_PLUGIN_ID = "order-pipeline-7xk2p-411863297"


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")
    node: Any = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


_DELETE = object()
_HTTP = f"spec/tasks/{_HTTP_ID}/http"


_P = pytest.param
_NODE = f"status/nodes/{_HTTP_ID}"
_PLUGIN = f"spec/tasks/{_PLUGIN_ID}/plugin"
_PLUGIN_PARAMS = f"status/nodes/{_PLUGIN_ID}/outputs/parameters"


@pytest.mark.parametrize(
    ("path", "value", "rejected_at"),
    [
        _P("spec/tasks", [{"name": "x", "http": {"url": "https://x"}}], "spec/tasks",
           id="tasks-not-a-map"),
        _P(f"spec/tasks/{_HTTP_ID}", "GET https://x", f"spec/tasks/{_HTTP_ID}",
           id="template-not-an-object"),
        _P(f"{_HTTP}/url", _DELETE, _HTTP, id="http-without-url"),
        _P(f"{_HTTP}/url", 42, f"{_HTTP}/url", id="url-not-a-string"),
        _P(f"{_HTTP}/method", ["POST"], f"{_HTTP}/method", id="method-a-list"),
        _P(f"{_HTTP}/timeoutSeconds", "20s", f"{_HTTP}/timeoutSeconds", id="timeout-a-string"),
        _P(f"{_HTTP}/headers", {"Content-Type": "text/plain"}, f"{_HTTP}/headers",
           id="headers-a-map"),
        _P(f"{_HTTP}/headers/0/name", _DELETE, f"{_HTTP}/headers/0", id="header-without-name"),
        _P(f"{_HTTP}/headers/1/valueFrom/secretKeyRef/key", _DELETE,
           f"{_HTTP}/headers/1/valueFrom/secretKeyRef", id="secret-ref-without-key"),
        _P(f"{_HTTP}/bodyFrom", {"bytes": "not base64!"}, f"{_HTTP}/bodyFrom/bytes",
           id="body-bytes-not-base64"),
        _P(f"{_HTTP}/insecureSkipVerify", "yes", f"{_HTTP}/insecureSkipVerify",
           id="insecure-not-a-bool"),
        _P(f"{_HTTP}/successCondition", True, f"{_HTTP}/successCondition",
           id="condition-not-a-string"),
        _P(_PLUGIN, {"hello": {}, "other": {}}, _PLUGIN, id="plugin-two-keys"),
        _P(_PLUGIN, {}, _PLUGIN, id="plugin-no-key"),
        _P(_PLUGIN, "hello", _PLUGIN, id="plugin-not-an-object"),
        _P("spec", _DELETE, "", id="no-spec"),
        _P("status/nodes", [{"phase": "Succeeded"}], "status/nodes", id="nodes-not-a-map"),
        _P(_NODE, "Succeeded", _NODE, id="node-not-an-object"),
        _P(f"{_NODE}/phase", 3, f"{_NODE}/phase", id="phase-not-a-string"),
        _P(f"{_NODE}/message", {"text": "x"}, f"{_NODE}/message", id="message-an-object"),
        _P(f"{_NODE}/outputs/result", {"a": 1}, f"{_NODE}/outputs/result",
           id="result-an-object"),
        _P(f"{_PLUGIN_PARAMS}/0/name", _DELETE, f"{_PLUGIN_PARAMS}/0",
           id="output-parameter-without-name"),
        _P(f"status/nodes/{_PLUGIN_ID}/progress", 1, f"status/nodes/{_PLUGIN_ID}/progress",
           id="progress-a-number"),
    ],
)  # fmt: skip
def test_malformed_tasksets_are_rejected_at_the_offending_field(
    jsonschema: ModuleType, schema: dict[str, Any], path: str, value: Any, rejected_at: str
) -> None:
    taskset = copy.deepcopy(_load(ARGO_SAMPLE))
    _set(taskset, path, value)
    errors = _errors(jsonschema, schema, taskset)
    assert errors, f"setting {path} to {value!r} was accepted"
    assert [e for e in errors if e.split(": ", 1)[0] == rejected_at], errors


# --- pruning -------------------------------------------------------------------------------


def prune(value: Any, node: dict[str, Any]) -> Any:
    """What the API server stores: fields the schema does not specify are dropped, except
    under ``x-kubernetes-preserve-unknown-fields: true``."""
    if isinstance(value, dict):
        properties = node.get("properties", {})
        additional = node.get("additionalProperties")
        preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
        kept = {}
        for key, item in value.items():
            if key in properties:
                kept[key] = prune(item, properties[key])
            elif isinstance(additional, dict):
                kept[key] = prune(item, additional)
            elif preserve:
                kept[key] = item
        return kept
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [prune(item, node["items"]) for item in value]
    return value


def test_template_fields_survive_pruning_unknown_status_fields_do_not(
    schema: dict[str, Any],
) -> None:
    taskset = copy.deepcopy(_load(ARGO_SAMPLE))
    taskset["metadata"] = {"name": taskset["metadata"]["name"]}  # ObjectMeta is not pruned here
    template = taskset["spec"]["tasks"][_HTTP_ID]
    template["http"]["proxy"] = "http://proxy:3128"  # a field of some newer Argo release
    node = taskset["status"]["nodes"][_HTTP_ID]
    node["startedAt"] = "2026-11-20T10:15:03Z"  # not part of a NodeResult

    stored = prune(taskset, schema)

    assert stored["spec"] == taskset["spec"]  # every template field kept, plugins included
    assert "startedAt" not in stored["status"]["nodes"][_HTTP_ID]
    del node["startedAt"]
    assert stored["status"] == taskset["status"]
