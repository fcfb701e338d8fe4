"""Secret values for ``valueFrom.secretKeyRef`` headers: the resolver port and its texts.

The executor never talks to Kubernetes: a header with ``valueFrom.secretKeyRef`` asks a
:class:`SecretResolver` for the value. The cluster's resolver reads the Secret through the
API (:mod:`agent.kube.secrets`), the local runner's holds Secret manifests
(:mod:`agent.executor.secrets`). Both decode ``data`` with :func:`decode_secret_data` and
fail with the texts below, so what is tried locally is what runs in the cluster.
Failures raise :class:`SecretError`, whose text becomes the node's message: it names the
Secret and the key and never contains a value.

Whose authority a Secret is read with is a second port, :class:`SecretAuthority`: before
a node uses a Secret the executor asks it whether the node's workflow may ``get`` that
Secret (the cluster's answer comes from the workflow's service account,
:mod:`agent.kube.authority`). It is separate from the resolver so that a Secret's value
is still read once and shared by every node, while the permission is decided per
service account.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Protocol

from agent.core.refs import TaskRef

__all__ = [
    "SECRET_TEXT_ERRORS",
    "SecretAuthority",
    "SecretError",
    "SecretResolver",
    "decode_secret_data",
    "denied_message",
    "missing_key_message",
    "not_found_message",
]


# A Secret's value is bytes, sent as they are (Argo: ``string(secret)``). Decoded with this
# error handler, any bytes read as text and ``text.encode("utf-8", SECRET_TEXT_ERRORS)``
# gives them back exactly; valid UTF-8 reads as itself.
SECRET_TEXT_ERRORS = "surrogateescape"


class SecretError(Exception):
    """A secret value cannot be had; ``str(exc)`` is the node's message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SecretResolver(Protocol):
    async def get_secret_value(self, *, namespace: str, name: str, key: str) -> str:
        """The value of ``key`` in Secret ``namespace/name``, its bytes decoded as UTF-8
        with :data:`SECRET_TEXT_ERRORS` (encode it the same way to send the raw bytes);
        :class:`SecretError` otherwise."""
        ...


class SecretAuthority(Protocol):
    async def check(self, *, ref: TaskRef, secret: str) -> None:
        """Return when the workflow of ``ref`` may ``get`` Secret ``secret`` in
        ``ref.namespace``; raise :class:`SecretError` (naming the service account and the
        Secret) when it may not or when that cannot be established."""
        ...


def denied_message(namespace: str, service_account: str, secret: str) -> str:
    """The node's message when the workflow's service account may not read the Secret."""
    return f'service account "{namespace}/{service_account}" may not get secret "{secret}"'


def missing_key_message(name: str, key: str) -> str:
    """Argo's text for a Secret without the requested key."""
    return f"secret '{name}' does not have the key '{key}'"


def not_found_message(name: str) -> str:
    """The API server's text for a Secret that does not exist (what Argo's agent reports)."""
    return f'secrets "{name}" not found'


def decode_secret_data(name: str, data: Mapping[str, object] | None) -> dict[str, bytes]:
    """A Secret's ``data`` (base64 values, as the API serves them) decoded, strictly.

    The API server only stores valid base64, so anything else is a broken manifest or a
    broken server: it is refused with a message naming the Secret and the key.
    """
    decoded: dict[str, bytes] = {}
    for key, value in (data or {}).items():
        try:
            decoded[str(key)] = base64.b64decode(str(value or ""), validate=True)
        except (binascii.Error, ValueError):
            raise SecretError(f"secret '{name}' key '{key}' is not valid base64") from None
    return decoded
