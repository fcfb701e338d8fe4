"""Secrets held in memory, built from Secret manifests: the local runner's resolver.

The cluster agent reads Secrets through the API (:mod:`agent.kube.secrets`); ``local``
and tests use :class:`StaticSecretResolver`. Both decode ``data`` and word their failures
through :mod:`agent.core.secrets`, so a manifest behaves locally as it does in the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.core.secrets import (
    SECRET_TEXT_ERRORS,
    SecretError,
    decode_secret_data,
    missing_key_message,
    not_found_message,
)

__all__ = ["StaticSecretResolver"]


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
            namespace = meta.get("namespace") or default_namespace
            data = manifest.get("data") or {}
            if not isinstance(data, Mapping):
                raise ValueError(f"secret {name!r}: data must be a mapping of key to base64 value")
            try:
                decoded = decode_secret_data(name, data)
            except SecretError as exc:
                raise ValueError(str(exc)) from None
            values = {
                key: value.decode("utf-8", SECRET_TEXT_ERRORS) for key, value in decoded.items()
            }
            string_data = manifest.get("stringData") or {}
            if not isinstance(string_data, Mapping):
                raise ValueError(f"secret {name!r}: stringData must be a mapping of key to string")
            # As in the API server, stringData wins over data for the same key.
            values.update({str(k): str(v) for k, v in string_data.items()})
            secrets[(str(namespace), name)] = values
        return cls(secrets)

    async def get_secret_value(self, *, namespace: str, name: str, key: str) -> str:
        values = self._secrets.get((namespace, name))
        if values is None:
            raise SecretError(not_found_message(name))
        if key not in values:
            raise SecretError(missing_key_message(name, key))
        return values[key]
