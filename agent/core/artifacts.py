"""Argo's artifact types for an HTTP template's output: where its response body is stored.

An HTTP template may declare ``outputs.artifacts`` (Argo's ``Artifact``,
pkg/apis/workflow/v1alpha1/workflow_types.go); the agent stores the response body in the
one artifact declared there. This module is the pure part of that feature, shared by the
executor (which stores the body) and the adapters (which find the repository):

* :func:`parse_output_artifact` reads the template's ``outputs.artifacts``; every refusal
  names the field (``outputs.artifacts[0].archive.tar``) and fails that node alone;
* :func:`parse_repository` reads an ``ArtifactRepository`` document (the value of a key of
  an ``artifact-repositories`` ConfigMap, the ``artifactRepository`` of the controller's
  ConfigMap, a Workflow's ``status.artifactRepositoryRef.artifactRepository``);
* :func:`complete_location` turns the artifact's own ``s3`` fields, completed from the
  repository where missing, into the complete :class:`S3Location` the body goes to and the
  node's ``outputs.artifacts`` records;
* :class:`RepositoryLookup` is the port that finds the repository for a node (the cluster's
  reads the Workflow and ConfigMaps, :mod:`agent.kube.artifacts`; the local runner's holds
  the ``--artifact-repository`` file).

Only S3 (and S3-compatible stores such as MinIO) is supported; any other kind of location
or repository fails the node with a message saying so.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import Field, ValidationError

from agent.core.model import SecretKeySelector, _ArgoModel, _describe
from agent.core.refs import TaskRef

__all__ = [
    "DEFAULT_KEY_FORMAT",
    "ArtifactError",
    "FixedRepository",
    "KeyVariables",
    "OutputArtifact",
    "Repository",
    "RepositoryLookup",
    "S3Location",
    "complete_location",
    "declares_artifacts",
    "expand_key_format",
    "output_record",
    "parse_output_artifact",
    "parse_repository",
    "split_endpoint_host",
]

#: Argo's ``DefaultArchivePattern`` (artifact_repository_types.go): the key format of a
#: repository without ``keyFormat``, to which the artifact's file name is joined.
DEFAULT_KEY_FORMAT = "{{workflow.name}}/{{pod.name}}"

# Fields of Argo's S3Bucket the agent cannot honour: refused by name rather than ignored,
# because ignoring them would store the body somewhere or somehow other than asked.
_UNSUPPORTED_S3 = {
    "roleARN": "assuming a role is not supported; give accessKeySecret and secretKeySecret",
    "useSDKCreds": "the SDK's credential chain is not used; give accessKeySecret and "
    "secretKeySecret",
    "createBucketIfNotPresent": "buckets are never created by the agent",
    "encryptionOptions": "server-side encryption options are not supported",
    "caSecret": "a custom CA for the store is not supported",
    "addressingStyle": "only path-style addressing is used",
}
# Argo's ArtifactLocation kinds other than s3 (workflow_types.go ArtifactLocation).
_OTHER_LOCATIONS = ("git", "http", "artifactory", "hdfs", "raw", "oss", "gcs", "azure", "plugin")
_TAG = re.compile(r"\{\{(.*?)\}\}")


class ArtifactError(Exception):
    """The artifact cannot be stored; ``message`` is the node's message.

    ``bad_input``: the template or a repository document is wrong (the node is ``Failed``,
    as for any bad template field); otherwise the store, a permission or the cluster failed
    (``Error``, as Argo reports a failed artifact save).
    """

    def __init__(self, message: str, *, bad_input: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.bad_input = bad_input

    def __str__(self) -> str:
        return self.message


class _S3Bucket(_ArgoModel):
    """Argo's ``S3Bucket``: the store and its credentials, inline in both types below."""

    endpoint: str = ""
    bucket: str = ""
    region: str = ""
    insecure: bool | None = None
    access_key_secret: SecretKeySelector | None = None
    secret_key_secret: SecretKeySelector | None = None
    session_token_secret: SecretKeySelector | None = None

    def bucket_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _S3Bucket.model_fields}


class S3Location(_S3Bucket):
    """Argo's ``S3Artifact``: ``S3Bucket`` fields inline, plus ``key``."""

    key: str = ""

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def has_location(self) -> bool:
        """Argo's ``S3Artifact.HasLocation``: endpoint, bucket and key all set."""
        return bool(self.endpoint and self.bucket and self.key)


class _S3Repository(_S3Bucket):
    """Argo's ``S3ArtifactRepository``: ``S3Bucket`` inline, ``keyFormat``, ``keyPrefix``."""

    key_format: str = ""
    key_prefix: str = ""


class _RepositoryDocument(_ArgoModel):
    archive_logs: bool | None = None
    s3: _S3Repository | None = None


class _Archive(_ArgoModel):
    none: dict[str, Any] | None = None
    tar: dict[str, Any] | None = None
    zip: dict[str, Any] | None = None


class _ArtifactDocument(_ArgoModel):
    name: str = Field(min_length=1)
    s3: S3Location | None = None
    archive: _Archive | None = None


@dataclass(frozen=True, slots=True)
class Repository:
    """An S3 artifact repository, and where it was found (for messages)."""

    s3: S3Location  # its bucket fields; ``key`` holds the key format (Argo's ToArtifactLocation)
    source: str


@dataclass(frozen=True, slots=True)
class OutputArtifact:
    """The artifact that receives the response body."""

    name: str
    location: S3Location | None  # the artifact's own s3 fields, possibly partial
    declared: Mapping[str, Any]  # as written, echoed into the node's outputs

    def needs_repository(self) -> bool:
        # Argo's ArtifactLocation.Relocate: a complete location is used as it is.
        return self.location is None or not self.location.has_location()


@dataclass(frozen=True, slots=True)
class KeyVariables:
    """The values of Argo's key-format variables for one HTTP node."""

    workflow_name: str
    workflow_namespace: str
    workflow_uid: str
    pod_name: str  # an HTTP node has no pod: its node ID stands in

    @classmethod
    def of(cls, ref: TaskRef) -> KeyVariables:
        return cls(ref.taskset, ref.namespace, ref.workflow_uid, ref.node_id)


class RepositoryLookup(Protocol):
    async def repository(self, *, ref: TaskRef) -> Repository:
        """The artifact repository for the workflow of ``ref``, in Argo's order of
        precedence; :class:`ArtifactError` naming what is missing or not permitted."""
        ...


class FixedRepository:
    """A :class:`RepositoryLookup` with one repository for every workflow (the local
    runner's ``--artifact-repository``)."""

    def __init__(self, repository: Repository) -> None:
        self._repository = repository

    async def repository(self, *, ref: TaskRef) -> Repository:
        return self._repository


def declares_artifacts(template: object) -> bool:
    """Whether a raw template declares ``outputs.artifacts`` (cheap; nothing validated)."""
    if not isinstance(template, Mapping):
        return False
    outputs = template.get("outputs")
    return isinstance(outputs, Mapping) and bool(outputs.get("artifacts"))


def parse_output_artifact(outputs: object) -> OutputArtifact | None:
    """The artifact declared in a template's ``outputs`` (``None`` when none is).

    One artifact receives the body; declaring several fails the node (there is one body,
    and guessing which artifact is meant would store it under the wrong name).
    """
    if outputs is None:
        return None
    if not isinstance(outputs, Mapping):
        raise ArtifactError("invalid template: outputs: expected an object", bad_input=True)
    declared = outputs.get("artifacts")
    if declared is None or declared == []:
        return None
    if not isinstance(declared, list):
        raise ArtifactError(
            "invalid template: outputs.artifacts: expected a list of artifacts", bad_input=True
        )
    if len(declared) > 1:
        names = ", ".join(
            repr(item.get("name")) if isinstance(item, Mapping) else "?" for item in declared
        )
        raise ArtifactError(
            "invalid template: outputs.artifacts: an HTTP template stores its response body "
            f"in exactly one artifact, {len(declared)} are declared ({names})",
            bad_input=True,
        )
    return _parse_artifact(declared[0], where="outputs.artifacts[0]")


def _parse_artifact(raw: object, *, where: str) -> OutputArtifact:
    if not isinstance(raw, Mapping):
        raise ArtifactError(f"invalid template: {where}: expected an object", bad_input=True)
    for kind in _OTHER_LOCATIONS:
        if raw.get(kind) is not None:
            raise ArtifactError(
                f"invalid template: {where}.{kind}: the HTTP agent stores artifacts in S3 "
                "only (an s3 location or an s3 artifact repository)",
                bad_input=True,
            )
    s3 = raw.get("s3")
    if isinstance(s3, Mapping):
        _refuse_unsupported(s3, where=f"invalid template: {where}.s3")
    try:
        document = _ArtifactDocument.model_validate(dict(raw))
    except ValidationError as exc:
        raise ArtifactError(f"invalid template: {_prefixed(where, exc)}", bad_input=True) from None
    archive = document.archive
    if archive is not None:
        for kind in ("tar", "zip"):
            if getattr(archive, kind) is not None:
                raise ArtifactError(
                    f"invalid template: {where}.archive.{kind}: the response body is stored "
                    "as sent; only archive: {none: {}} is supported",
                    bad_input=True,
                )
    return OutputArtifact(name=document.name, location=document.s3, declared=dict(raw))


def parse_repository(raw: object, *, source: str) -> Repository:
    """An ``ArtifactRepository`` document; ``source`` names it in every message."""
    if not isinstance(raw, Mapping):
        raise ArtifactError(f"artifact repository {source}: expected an object", bad_input=True)
    s3 = raw.get("s3")
    if s3 is None:
        kinds = sorted(k for k in raw if k != "archiveLogs") or ["none"]
        raise ArtifactError(
            f"artifact repository {source} is not an s3 repository (it has "
            f"{', '.join(kinds)}); the HTTP agent stores artifacts in S3 only",
            bad_input=True,
        )
    if isinstance(s3, Mapping):
        _refuse_unsupported(s3, where=f"artifact repository {source}: s3")
    try:
        document = _RepositoryDocument.model_validate(dict(raw))
    except ValidationError as exc:
        raise ArtifactError(
            f"artifact repository {source}: {_describe(exc)}", bad_input=True
        ) from None
    assert document.s3 is not None
    repo = document.s3
    # Argo's S3ArtifactRepository.IntoArtifactLocation: keyFormat, else keyPrefix joined
    # with the default archive pattern.
    key_format = repo.key_format or posixpath.join(repo.key_prefix, DEFAULT_KEY_FORMAT)
    return Repository(s3=S3Location(**repo.bucket_fields(), key=key_format), source=source)


def _refuse_unsupported(s3: Mapping[str, Any], *, where: str) -> None:
    for field, why in _UNSUPPORTED_S3.items():
        if s3.get(field) not in (None, False, "", {}):
            raise ArtifactError(f"{where}.{field}: {why}", bad_input=True)


def _prefixed(where: str, exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in (where, *error["loc"]))
        parts.append(f"{loc}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def expand_key_format(key_format: str, variables: KeyVariables, *, source: str) -> str:
    """Substitute Argo's ``{{...}}`` variables an HTTP node has; any other fails, named."""
    values = {
        "workflow.name": variables.workflow_name,
        "workflow.namespace": variables.workflow_namespace,
        "workflow.uid": variables.workflow_uid,
        "pod.name": variables.pod_name,
    }

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        value = values.get(name)
        if value is None:
            raise ArtifactError(
                f"artifact repository {source}: keyFormat: {{{{{name}}}}} is not available to "
                f"an HTTP node (available: {', '.join('{{' + v + '}}' for v in values)})",
                bad_input=True,
            )
        if not value:
            raise ArtifactError(
                f"artifact repository {source}: keyFormat: {{{{{name}}}}} is unknown for this "
                "node (the taskset names no owner Workflow)",
                bad_input=True,
            )
        return value

    return _TAG.sub(substitute, key_format)


def complete_location(
    artifact: OutputArtifact, repository: Repository | None, variables: KeyVariables
) -> S3Location:
    """Where the body goes: the artifact's own ``s3`` fields, completed from the repository.

    A complete own location (endpoint, bucket and key) is used as it is, as Argo's
    ``ArtifactLocation.Relocate`` does. Otherwise every missing field is taken from the
    repository; the repository's credentials are taken only when the artifact names no
    endpoint of its own or the repository's, so they are never sent to another store. A
    missing key is the repository's key format, expanded, joined with the artifact's name
    (Argo's executor ``saveArtifactFromFile``: ``path.Join(archiveKey, fileName)``).
    """
    own = artifact.location or S3Location()
    if own.has_location() or repository is None:
        if not own.has_location():
            missing = [f for f in ("endpoint", "bucket", "key") if not getattr(own, f)]
            raise ArtifactError(
                "no artifact repository is configured and outputs.artifacts[0].s3 lacks "
                f"{', '.join(missing)}"
            )
        return own
    repo = repository.s3
    same_store = not own.endpoint or own.endpoint == repo.endpoint
    key = own.key
    if not key:
        prefix = expand_key_format(repo.key, variables, source=repository.source)
        key = posixpath.join(prefix, artifact.name)
    location = S3Location(
        endpoint=own.endpoint or repo.endpoint,
        bucket=own.bucket or repo.bucket,
        region=own.region or repo.region,
        insecure=own.insecure if own.insecure is not None else repo.insecure,
        access_key_secret=own.access_key_secret or (repo.access_key_secret if same_store else None),
        secret_key_secret=own.secret_key_secret or (repo.secret_key_secret if same_store else None),
        session_token_secret=own.session_token_secret
        or (repo.session_token_secret if same_store else None),
        key=key,
    )
    for field in ("endpoint", "bucket"):
        if not getattr(location, field):
            raise ArtifactError(
                f"artifact repository {repository.source} has no s3.{field} and "
                f"outputs.artifacts[0].s3.{field} is not set",
                bad_input=True,
            )
    return location


def split_endpoint_host(endpoint: str) -> str:
    """The host of an S3 ``endpoint`` (``host``, ``host:port``, ``[v6]:port``)."""
    if endpoint.startswith("["):
        return endpoint[1:].partition("]")[0]
    host, _, _ = endpoint.partition(":")
    return host


def output_record(artifact: OutputArtifact, location: S3Location) -> dict[str, Any]:
    """The artifact as the node's ``outputs.artifacts`` entry (Argo's JSON): as declared,
    with the complete ``s3`` location (secret references, never values) and
    ``archive: {none: {}}`` (the object is the body as sent)."""
    record = {k: v for k, v in artifact.declared.items() if k not in ("s3", "archive")}
    s3: dict[str, Any] = location.model_dump(mode="json", by_alias=True)
    s3["insecure"] = bool(location.insecure)  # written out: the consumer must not guess
    record["s3"] = s3
    record["archive"] = {"none": {}}
    return record
