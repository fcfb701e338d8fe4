"""One typed settings object for the whole process.

Every setting has an environment variable; command-line flags override them. Argo's own
variable names (``ARGO_WORKFLOW_NAME``, ``ARGO_AGENT_TASK_WORKERS``,
``ARGO_AGENT_PATCH_RATE``, ``ARGO_PLUGIN_ADDRESSES`` ...) keep their meaning, so the agent
can be dropped into the pod Argo's controller would have created; our own settings use the
``ARGO_AGENT_`` prefix. Invalid values fail at start-up with :class:`SettingsError` naming
the variable (Argo panics on an unparsable duration).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent.core.duration import parse_duration
from agent.executor.policy import parse_networks
from agent.executor.settings import (
    DEFAULT_CA_DIR,
    DEFAULT_DENY_NETWORKS,
    DEFAULT_EXPR_MAX_BYTES,
    DEFAULT_EXPR_TIMEOUT_SECONDS,
    DEFAULT_EXPR_WORKERS,
    DEFAULT_HTTP2,
    DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_TRANSPORT,
    TransportKind,
)

__all__ = ["Settings", "SettingsError", "load_settings"]


class SettingsError(ValueError):
    """Start-up configuration is unusable; the message names the variable or flag."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(populate_by_name=True, extra="forbid")

    # -- where to watch -----------------------------------------------------------------
    kubeconfig: str | None = Field(default=None, validation_alias=AliasChoices("KUBECONFIG"))
    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("ARGO_AGENT_NAMESPACES")
    )
    all_namespaces: bool = Field(
        default=False, validation_alias=AliasChoices("ARGO_AGENT_ALL_NAMESPACES")
    )
    workflow: str | None = Field(default=None, validation_alias=AliasChoices("ARGO_WORKFLOW_NAME"))
    instance_id: str = Field(default="", validation_alias=AliasChoices("ARGO_INSTANCE_ID"))

    # -- how fast -----------------------------------------------------------------------
    task_workers: int = Field(
        default=512, ge=1, le=100_000, validation_alias=AliasChoices("ARGO_AGENT_TASK_WORKERS")
    )
    processes: int = Field(
        default=1, ge=0, le=64, validation_alias=AliasChoices("ARGO_AGENT_PROCESSES")
    )
    patch_rate: float = Field(default=10.0, validation_alias=AliasChoices("ARGO_AGENT_PATCH_RATE"))
    patch_mode: Literal["eager", "tick"] = Field(
        default="eager", validation_alias=AliasChoices("ARGO_AGENT_PATCH_MODE")
    )
    max_patches_in_flight: int = Field(
        default=2, ge=1, le=1000, validation_alias=AliasChoices("ARGO_AGENT_MAX_PATCHES_IN_FLIGHT")
    )

    redelivery: Literal["idempotent", "always", "never"] = Field(
        default="idempotent", validation_alias=AliasChoices("ARGO_AGENT_REDELIVERY")
    )

    # -- replicas (docs/replicas.md) ------------------------------------------------------
    membership: Literal["lease", "none"] = Field(
        default="lease", validation_alias=AliasChoices("ARGO_AGENT_MEMBERSHIP")
    )
    lease_namespace: str | None = Field(
        default=None, validation_alias=AliasChoices("ARGO_AGENT_LEASE_NAMESPACE")
    )
    lease_duration: float = Field(
        default=15.0, validation_alias=AliasChoices("ARGO_AGENT_LEASE_DURATION")
    )
    group: str = Field(
        default="argo-http-agent",
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$",
        validation_alias=AliasChoices("ARGO_AGENT_GROUP"),
    )

    # -- HTTP execution (defaults: the executor's, agent/executor/settings.py) ----------
    default_timeout: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        gt=0,
        validation_alias=AliasChoices("ARGO_AGENT_DEFAULT_TIMEOUT"),
    )
    max_result_bytes: int = Field(
        default=DEFAULT_MAX_RESULT_BYTES,
        ge=0,
        validation_alias=AliasChoices("ARGO_AGENT_MAX_RESULT_BYTES"),
    )
    ca_dir: str = Field(default=DEFAULT_CA_DIR, validation_alias=AliasChoices("ARGO_AGENT_CA_DIR"))
    deny_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_DENY_NETWORKS),
        validation_alias=AliasChoices("ARGO_AGENT_DENY_NETWORKS"),
    )
    # Namespace outbound policies: ConfigMaps labelled argo-http-agent.io/outbound-policy=true
    # in the agent's own namespace (agent/source/policies.py).
    outbound_policies: Literal["on", "off"] = Field(
        default="off", validation_alias=AliasChoices("ARGO_AGENT_OUTBOUND_POLICIES")
    )
    plugin_addresses: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("ARGO_PLUGIN_ADDRESSES")
    )
    plugin_names: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("ARGO_PLUGIN_NAMES")
    )
    transport: TransportKind = Field(
        default=DEFAULT_TRANSPORT, validation_alias=AliasChoices("ARGO_AGENT_TRANSPORT")
    )
    http2: Literal["on", "off"] = Field(
        default="on" if DEFAULT_HTTP2 else "off",
        validation_alias=AliasChoices("ARGO_AGENT_HTTP2"),
    )
    secret_authority: Literal["workflow", "agent"] = Field(
        default="workflow", validation_alias=AliasChoices("ARGO_AGENT_SECRET_AUTHORITY")
    )
    secret_cache_seconds: float = Field(
        default=10.0, ge=0, validation_alias=AliasChoices("ARGO_AGENT_SECRET_CACHE_SECONDS")
    )
    # -- output artifacts (docs/artifacts.md) ---------------------------------------------
    # Where the controller's default artifact repository is read (``artifactRepository`` in
    # Argo's workflow-controller-configmap), after the Workflow's status and the namespace's
    # artifact-repositories ConfigMap.
    controller_namespace: str = Field(
        default="argo",
        min_length=1,
        validation_alias=AliasChoices("ARGO_AGENT_CONTROLLER_NAMESPACE"),
    )
    controller_configmap: str = Field(
        default="workflow-controller-configmap",
        min_length=1,
        validation_alias=AliasChoices("ARGO_AGENT_CONTROLLER_CONFIGMAP"),
    )
    artifact_repository_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        validation_alias=AliasChoices("ARGO_AGENT_ARTIFACT_REPOSITORY_CACHE_SECONDS"),
    )
    expr_max_seconds: float = Field(
        default=DEFAULT_EXPR_TIMEOUT_SECONDS,
        gt=0,
        le=60,
        validation_alias=AliasChoices("ARGO_AGENT_EXPR_MAX_SECONDS"),
    )
    expr_max_bytes: int = Field(
        default=DEFAULT_EXPR_MAX_BYTES,
        ge=1 << 20,
        validation_alias=AliasChoices("ARGO_AGENT_EXPR_MAX_BYTES"),
    )
    expr_workers: int = Field(
        default=DEFAULT_EXPR_WORKERS,
        ge=1,
        le=64,
        validation_alias=AliasChoices("ARGO_AGENT_EXPR_WORKERS"),
    )

    # -- the service --------------------------------------------------------------------
    metrics_host: str = Field(
        default="0.0.0.0", validation_alias=AliasChoices("ARGO_AGENT_METRICS_HOST")
    )
    metrics_port: int = Field(
        default=9090, ge=0, le=65535, validation_alias=AliasChoices("ARGO_AGENT_METRICS_PORT")
    )
    shutdown_grace: float = Field(
        default=25.0, ge=0, validation_alias=AliasChoices("ARGO_AGENT_SHUTDOWN_GRACE")
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop", validation_alias=AliasChoices("ARGO_AGENT_EVENT_LOOP")
    )
    log_format: Literal["json", "text"] = Field(
        default="json", validation_alias=AliasChoices("ARGO_AGENT_LOG_FORMAT")
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", validation_alias=AliasChoices("ARGO_AGENT_LOG_LEVEL")
    )
    agent_id: str = Field(default="", validation_alias=AliasChoices("ARGO_AGENT_ID", "POD_NAME"))
    api_request_timeout: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("ARGO_AGENT_API_TIMEOUT")
    )
    watch_timeout: int = Field(
        default=120, ge=1, validation_alias=AliasChoices("ARGO_AGENT_WATCH_TIMEOUT")
    )

    @field_validator("patch_rate", "lease_duration", mode="before")
    @classmethod
    def _go_duration(cls, value: object) -> object:
        if isinstance(value, str):
            seconds = parse_duration(value.strip())
            if seconds <= 0:
                raise ValueError(f"must be a positive Go duration, got {value!r}")
            return seconds
        return value

    @field_validator("lease_duration")
    @classmethod
    def _lease_duration(cls, value: float) -> float:
        if not 1.0 <= value <= 3600.0:
            raise ValueError(f"must be between 1s and 1h, got {value:g}s")
        return value

    @field_validator(
        "namespaces", "deny_networks", "plugin_addresses", "plugin_names", mode="before"
    )
    @classmethod
    def _list(cls, value: object) -> object:
        # Argo passes JSON arrays (ARGO_PLUGIN_NAMES='["a"]'); people type "a,b". With no
        # plugins the controller writes the JSON value ``null`` (controller/agent.go
        # ``createAgentPod``: ``MustMarshallJSON`` of a nil slice), which Argo's agent
        # unmarshals to no plugins (argoexec commands/agent.go ``getPluginAddresses``).
        if value is None:
            return []
        if isinstance(value, str):
            text = value.strip()
            if text in ("", "null"):
                return []
            if text.startswith("["):
                try:
                    items = json.loads(text)
                except ValueError as exc:
                    raise ValueError(f"not a JSON array of strings: {exc}") from None
                if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                    raise ValueError("must be a JSON array of strings")
                return items
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("deny_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if len(self.plugin_addresses) != len(self.plugin_names):
            raise ValueError(
                "ARGO_PLUGIN_ADDRESSES and ARGO_PLUGIN_NAMES must list as many entries "
                f"({len(self.plugin_addresses)} != {len(self.plugin_names)})"
            )
        if self.all_namespaces and self.namespaces:
            raise ValueError("--all-namespaces and --namespace exclude each other")
        return self

    @property
    def per_workflow(self) -> bool:
        return bool(self.workflow)

    @property
    def members(self) -> Literal["lease", "none"]:
        """The membership in effect: per-workflow mode (Argo's RBAC: no Leases) has none."""
        return "none" if self.per_workflow else self.membership


_FLAG_OF = {name: "--" + name.replace("_", "-") for name in Settings.model_fields}


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, with explicit ``overrides`` (flags) on top."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, given)) from None


def _describe(exc: ValidationError, given: dict[str, Any]) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        msg = error["msg"].removeprefix("Value error, ")
        if field in Settings.model_fields:
            alias = Settings.model_fields[field].validation_alias
            envs = alias.choices if isinstance(alias, AliasChoices) else []
            source = _FLAG_OF[field] if field in given else " / ".join(str(e) for e in envs)
            lines.append(f"{source}: {msg}")
        else:
            lines.append(f"{field or 'settings'}: {msg}")
    return "invalid configuration: " + "; ".join(lines)
