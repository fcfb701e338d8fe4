"""Argo's types, as the controller writes them into a WorkflowTaskSet.

These pydantic models mirror ``pkg/apis/workflow/v1alpha1`` field for field, camelCase on
the wire. Two rules shape them:

* **Unknown fields are kept.** A resolved template carries many fields the agent never
  reads (``metadata``, ``inputs``, ``nodeSelector`` ...); they must survive a round trip
  (plugins receive the whole template), so every model allows extras.
* **Empty fields are omitted on output**, as Go's ``omitempty`` does: use
  :func:`dump` (never ``model_dump`` directly) to serialise a result for the wire.

A taskset is never validated as a whole: ``spec.tasks`` stays a mapping of raw dicts and
each template is parsed on its own by :func:`parse_template`, so one malformed template
fails its own node (with a message naming the field) and never its neighbours.
"""

from __future__ import annotations

import base64
import binascii
import builtins
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
    field_validator,
    model_serializer,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "HTTP",
    "Backoff",
    "HTTPBodySource",
    "HTTPHeader",
    "HTTPHeaderSource",
    "NodePhase",
    "NodeResult",
    "Outputs",
    "Parameter",
    "RetryStrategy",
    "SecretKeySelector",
    "Template",
    "TemplateError",
    "dump",
    "parse_template",
]


class _ArgoModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
        populate_by_name=True,
        extra="allow",
    )

    # Wire names of the fields Go writes even when empty: no ``omitempty`` in their JSON tag
    # (``name``, ``url``, ``key``), or a pointer to a string (``result``, ``exitCode``).
    _always: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _go_omitempty(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        if not info.by_alias or not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        declared = set()
        for name, spec in type(self).model_fields.items():
            wire = spec.serialization_alias or name
            declared.add(wire)
            if wire not in data or data[wire] is None:
                continue  # a nil pointer
            value = data[wire]
            if (
                wire in self._always
                or isinstance(getattr(self, name), BaseModel)  # a non-nil pointer to a struct
                or not _is_empty(value)
            ):
                out[wire] = value
        for key, value in data.items():
            if key not in declared:
                out[key] = value  # unknown fields travel verbatim
        return out


class NodePhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    SKIPPED = "Skipped"
    FAILED = "Failed"
    ERROR = "Error"
    OMITTED = "Omitted"

    @property
    def fulfilled(self) -> bool:
        return self not in (NodePhase.PENDING, NodePhase.RUNNING)


FULFILLED_PHASES = frozenset(p.value for p in NodePhase if p.fulfilled)


class SecretKeySelector(_ArgoModel):
    _always = frozenset({"key"})

    name: str = ""
    key: str
    optional: bool | None = None


class HTTPHeaderSource(_ArgoModel):
    secret_key_ref: SecretKeySelector | None = None


class HTTPHeader(_ArgoModel):
    _always = frozenset({"name"})

    name: str
    value: str = ""
    value_from: HTTPHeaderSource | None = None


class HTTPBodySource(_ArgoModel):
    """``bodyFrom``: Go marshals ``[]byte`` as base64, so the wire form is a base64 string."""

    data: builtins.bytes | None = Field(
        default=None, validation_alias="bytes", serialization_alias="bytes"
    )

    @field_validator("data", mode="before")
    @classmethod
    def _decode_base64(cls, value: object) -> object:
        if value is None or isinstance(value, bytes):
            return value
        if not isinstance(value, str):
            raise ValueError("must be a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"invalid base64: {exc}") from None

    @field_serializer("data")
    def _encode_base64(self, value: builtins.bytes | None) -> str | None:
        return None if value is None else base64.b64encode(value).decode("ascii")


class HTTP(_ArgoModel):
    _always = frozenset({"url"})

    method: str = ""
    url: str = ""
    headers: list[HTTPHeader] = Field(default_factory=list)
    timeout_seconds: int | None = None
    success_condition: str = ""
    body: str = ""
    body_from: HTTPBodySource | None = None
    insecure_skip_verify: bool = False


class Backoff(_ArgoModel):
    # Argo's IntOrString: "1s", "2m", or a bare number of seconds.
    duration: str | int | None = None
    factor: str | int | None = None
    max_duration: str | int | None = None
    cap: str | int | None = None


class RetryStrategy(_ArgoModel):
    limit: str | int | None = None
    retry_policy: str = ""
    expression: str = ""
    backoff: Backoff | None = None


class Parameter(_ArgoModel):
    _always = frozenset({"name"})

    name: str
    value: str | None = None


class Outputs(_ArgoModel):
    _always = frozenset({"result", "exitCode"})  # *string: "" is a value

    parameters: list[Parameter] | None = None
    artifacts: list[dict[str, Any]] | None = None
    result: str | None = None
    exit_code: str | None = None


class Template(_ArgoModel):
    _always = frozenset({"plugin"})  # *Plugin: present means "a plugin template", even if {}

    name: str = ""
    http: HTTP | None = None
    plugin: dict[str, Any] | None = None
    retry_strategy: RetryStrategy | None = None


class NodeResult(_ArgoModel):
    phase: NodePhase | str = ""
    message: str = ""
    outputs: Outputs | None = None
    progress: str = ""

    @property
    def fulfilled(self) -> bool:
        return str(self.phase) in FULFILLED_PHASES


def dump(model: BaseModel) -> dict[str, Any]:
    """Serialise for the wire as Go does: camelCase, ``omitempty`` fields left out when
    empty, fields without it (and non-nil pointers) always written, unknown fields verbatim."""
    if type(model) is NodeResult:
        fast = _dump_plain_result(model)
        if fast is not None:
            return fast
    return _dump_model(model)


def _dump_model(model: BaseModel) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return dumped


def _dump_plain_result(result: NodeResult) -> dict[str, Any] | None:
    # Every task's result is dumped once, on the hot path: the executor's results (a phase,
    # a message, outputs.result) are written directly, equal to the general path (pinned by
    # tests/test_model.py); anything else (extras, parameters, artifacts) is not plain.
    outputs = result.outputs
    if result.model_extra or (
        outputs is not None
        and (
            outputs.model_extra
            or outputs.parameters is not None
            or outputs.artifacts is not None
            or outputs.exit_code is not None
        )
    ):
        return None
    out: dict[str, Any] = {}
    phase = result.phase.value if isinstance(result.phase, NodePhase) else result.phase
    if phase:
        out["phase"] = phase
    if result.message:
        out["message"] = result.message
    if outputs is not None:
        out["outputs"] = {} if outputs.result is None else {"result": outputs.result}
    if result.progress:
        out["progress"] = result.progress
    return out


def _is_empty(value: Any) -> bool:
    return value is False or value == "" or value == {} or value == []


class TemplateError(ValueError):
    """A template that cannot be parsed; the message names the offending field."""


def parse_template(raw: object) -> Template:
    """Parse one ``spec.tasks`` entry, turning pydantic's errors into one readable line."""
    if not isinstance(raw, dict):
        raise TemplateError(f"invalid template: expected an object, got {type(raw).__name__}")
    try:
        return Template.model_validate(raw)
    except ValidationError as exc:
        raise TemplateError(f"invalid template: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in error["loc"])
        msg = error["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
