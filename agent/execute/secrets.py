"""Secret-sourced header values: the resolver interface and an in-memory resolver.

The executor never talks to Kubernetes: a header with ``valueFrom.secretKeyRef`` asks a
:class:`SecretResolver` for the value (the cluster implementation reads the Secret in the
taskset's namespace; the local runner uses :class:`StaticSecretResolver` built from Secret
manifests). Failures raise :class:`SecretError` whose text becomes the node's message, so it
must name the secret and key and never contain a value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

__all__ = ["SecretError", "SecretResolver", "StaticSecretResolver", "missing_key_message"]


class SecretError(Exception):
    """A secret value cannot be had; ``str(exc)`` is the node's message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def missing_key_message(name: str, key: str) -> str:
    """Argo's text for a Secret without the requested key."""
    return f"secret '{name}' does not have the key '{key}'"


class SecretResolver(Protocol):
    async def get_secret_value(self, *, namespace: str, name: str, key: str) -> str:
        """The decoded value of ``key`` in Secret ``namespace/name``; :class:`SecretError`
        otherwise."""
        ...


class StaticSecretResolver:
    """Secrets held in memory: ``{(namespace, name): {key: value}}``."""

    def __init__(self, secrets: Mapping[tuple[str, str], Mapping[str, str]] | None = None) -> None:
        self._secrets: dict[tuple[str, str], dict[str, str]] = {
            key: dict(values) for key, values in (secrets or {}).items()
        }

    @classmethod
    def from_manifests(
        cls, manifests: Iterable[Mapping[str, Any]], *, default_namespace: str = "default"
    ) -> StaticSecretResolver:
        """Build from Kubernetes ``Secret`` manifests (``data`` base64, ``stringData`` plain).

        Raises ``ValueError`` naming the manifest (by position and name) and the field.
        """
        secrets: dict[tuple[str, str], dict[str, str]] = {}
        for index, manifest in enumerate(manifests):
            where = f"secret #{index + 1}"
            if not isinstance(manifest, Mapping):
                raise ValueError(f"{where}: expected a Secret manifest (a mapping)")
            kind = manifest.get("kind", "Secret")
            if kind != "Secret":
                raise ValueError(f"{where}: kind must be Secret, got {kind!r}")
            meta = manifest.get("metadata")
            if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
                raise ValueError(f"{where}: metadata.name is required")
            name = meta["name"]
            where = f"secret {name!r}"
            namespace = meta.get("namespace") or default_namespace
            values: dict[str, str] = {}
            data = manifest.get("data") or {}
            if not isinstance(data, Mapping):
                raise ValueError(f"{where}: data must be a mapping of key to base64 value")
            for key, encoded in data.items():
                try:
                    values[str(key)] = base64.b64decode(str(encoded), validate=True).decode(
                        "utf-8", "replace"
                    )
                except (binascii.Error, ValueError):
                    raise ValueError(f"{where}: data.{key} is not valid base64") from None
            string_data = manifest.get("stringData") or {}
            if not isinstance(string_data, Mapping):
                raise ValueError(f"{where}: stringData must be a mapping of key to string")
            # As in the API server, stringData wins over data for the same key.
            values.update({str(k): str(v) for k, v in string_data.items()})
            secrets[(str(namespace), name)] = values
        return cls(secrets)

    async def get_secret_value(self, *, namespace: str, name: str, key: str) -> str:
        values = self._secrets.get((namespace, name))
        if values is None:
            raise SecretError(f'secrets "{name}" not found')
        if key not in values:
            raise SecretError(missing_key_message(name, key))
        return values[key]
