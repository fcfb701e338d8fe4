"""Where an HTTP node's body goes: the declared artifact made into a store target.

Before the request is sent, the node's artifact is planned completely: the repository is
found (a :class:`~agent.core.artifacts.RepositoryLookup`), the location completed
(:func:`~agent.core.artifacts.complete_location`) and the credentials read from their
Secrets, with the same authority rule as header Secrets (the workflow's service account
must be allowed to ``get`` each Secret, :class:`~agent.core.secrets.SecretAuthority`). So a
node whose body could not be stored fails before its request has any effect, and the body
is streamed to a target known to be usable as far as the agent can tell.

Failures are :class:`~agent.core.artifacts.ArtifactError`: ``bad_input`` for a template
or repository document that is wrong (``Failed``), otherwise ``Error`` (a permission, a
missing Secret, the cluster), as Argo reports a failed artifact save.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.artifacts.store import S3Credentials, S3Target
from agent.core.artifacts import (
    ArtifactError,
    KeyVariables,
    OutputArtifact,
    RepositoryLookup,
    S3Location,
    complete_location,
    output_record,
)
from agent.core.model import SecretKeySelector
from agent.core.refs import TaskRef
from agent.core.secrets import SecretAuthority, SecretError, SecretResolver

__all__ = ["ArtifactPlan", "ArtifactPlanner"]


@dataclass(frozen=True, slots=True)
class ArtifactPlan:
    """One node's artifact: where its body goes and how the node records it."""

    name: str
    location: S3Location
    target: S3Target
    #: the template chose the endpoint (not its repository): the outbound policy applies
    own_endpoint: bool = False

    def record(self, artifact: OutputArtifact) -> dict[str, Any]:
        return output_record(artifact, self.location)


class ArtifactPlanner:
    """Completes locations and reads credentials; one per executor."""

    def __init__(
        self,
        *,
        repositories: RepositoryLookup | None,
        secrets: SecretResolver,
        authority: SecretAuthority | None,
    ) -> None:
        self._repositories = repositories
        self._secrets = secrets
        self._authority = authority

    async def plan(self, artifact: OutputArtifact, *, ref: TaskRef) -> ArtifactPlan:
        repository = None
        if artifact.needs_repository() and self._repositories is not None:
            repository = await self._repositories.repository(ref=ref)
        location = complete_location(artifact, repository, KeyVariables.of(ref))
        credentials = await self._credentials(location, ref=ref)
        target = S3Target(
            endpoint=location.endpoint,
            bucket=location.bucket,
            key=location.key,
            region=location.region,
            insecure=bool(location.insecure),
            credentials=credentials,
        )
        own = artifact.location.endpoint if artifact.location is not None else ""
        return ArtifactPlan(
            name=artifact.name,
            location=location,
            target=target,
            own_endpoint=bool(own) and (repository is None or own != repository.s3.endpoint),
        )

    async def _credentials(self, location: S3Location, *, ref: TaskRef) -> S3Credentials | None:
        access, secret = location.access_key_secret, location.secret_key_secret
        if access is None and secret is None:
            return None  # anonymous requests, as Argo's S3 driver without keys
        if access is None or secret is None:
            given = "accessKeySecret" if access is not None else "secretKeySecret"
            lacking = "secretKeySecret" if access is not None else "accessKeySecret"
            raise ArtifactError(
                f"s3.{given} is set but s3.{lacking} is not; give both",
                bad_input=True,
            )
        token = location.session_token_secret
        return S3Credentials(
            access_key_id=await self._value(access, field="accessKeySecret", ref=ref),
            secret_access_key=await self._value(secret, field="secretKeySecret", ref=ref),
            session_token=None
            if token is None
            else await self._value(token, field="sessionTokenSecret", ref=ref),
        )

    async def _value(self, selector: SecretKeySelector, *, field: str, ref: TaskRef) -> str:
        if not selector.name or not selector.key:
            raise ArtifactError(
                f"s3.{field}: needs both name and key (got name {selector.name!r}, key "
                f"{selector.key!r})",
                bad_input=True,
            )
        try:
            if self._authority is not None:
                await self._authority.check(ref=ref, secret=selector.name)
            value = await self._secrets.get_secret_value(
                namespace=ref.namespace, name=selector.name, key=selector.key
            )
        except SecretError as exc:
            raise ArtifactError(f"s3.{field}: {exc.message}") from None
        return value.strip()
