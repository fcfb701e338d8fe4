"""Where an artifact goes and the port that puts it there.

An HTTP template's artifact output is the response body, written to an object store while
it is read from the socket. The executor resolves *where* (an :class:`S3Target`: endpoint,
bucket, key, region, credentials) and hands the body, as an async iterator of chunks, to an
:class:`ArtifactStore`, which streams it up with bounded memory and answers with what the
store verified (:class:`Uploaded`) or raises :class:`StoreError`, whose message names the
location (``s3://bucket/key``) and the cause and never a secret value.

The port is small on purpose: a GCS or Azure store can implement ``put`` and ``aclose``
with targets of its own without the executor changing its shape. :func:`open_store` builds
the S3 implementation (:mod:`agent.artifacts.s3`), imported on first use so that loading
the executor does not load the S3 client library.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "ADDRESSING_STYLES",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "ArtifactStore",
    "S3Credentials",
    "S3Target",
    "StoreError",
    "Uploaded",
    "open_store",
]

# S3 refuses parts smaller than 5 MiB (all but the last). The default is a little larger so
# that a 1 GiB body is ~128 parts (S3 allows 10,000) while memory stays a few parts.
MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024
# Argo's S3Bucket.addressingStyle values ("" = auto-detect).
ADDRESSING_STYLES = ("", "path", "virtual-hosted")
# Attempts per request (the first one included) for transient store errors.
DEFAULT_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class S3Credentials:
    """Static S3 credentials. The repr names the fields, never their values."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class S3Target:
    """One object in an S3 (or S3-compatible) bucket.

    ``endpoint`` is ``host[:port]`` without a scheme, as Argo's ``S3Artifact.endpoint``;
    ``insecure`` selects ``http://`` (Argo's ``insecure: true``), otherwise ``https://``.
    An empty ``region`` means ``us-east-1``. ``credentials`` None means anonymous requests.
    ``addressing_style`` is Argo's ``addressingStyle``: ``""`` (auto: virtual-hosted on
    ``*.amazonaws.com``, path-style elsewhere), ``"path"`` or ``"virtual-hosted"``.
    ``ca_pem`` is the PEM text of the CA certificates that verify the store's TLS
    certificate instead of the system's (Argo's ``caSecret``).
    """

    endpoint: str
    bucket: str
    key: str
    region: str = ""
    insecure: bool = False
    credentials: S3Credentials | None = None
    addressing_style: str = ""
    ca_pem: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``s3://bucket/key``: how messages name the location."""
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Uploaded:
    """What the store holds after a successful ``put``.

    ``checksum`` is the integrity value the store verified on receipt, as
    ``"<algorithm>:<value>"`` (for a multipart upload, S3's composite checksum of the parts,
    e.g. ``"sha256:<base64>-<parts>"``).
    """

    size: int
    etag: str
    checksum: str


class StoreError(Exception):
    """An artifact could not be stored; ``message`` names the location and the cause.

    ``transient`` tells whether trying the whole upload again later could succeed (the
    store was unavailable or throttling after every retry), as opposed to a refusal that
    would repeat (no such bucket, access denied, bad request) or a body that failed.
    """

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient

    def __str__(self) -> str:
        return self.message


class ArtifactStore(Protocol):
    """Puts response bodies into an object store; one long-lived instance per agent."""

    async def put(self, target: S3Target, body: AsyncIterable[bytes]) -> Uploaded:
        """Stream ``body`` to ``target``, holding at most a few parts in memory.

        Raises :class:`StoreError` when the object was not stored; no partial object and no
        pending multipart upload remain then (also when the caller is cancelled). An
        exception raised by ``body`` itself propagates unchanged after the same cleanup.
        """
        ...

    async def aclose(self) -> None:
        """Close the clients and their connection pools."""
        ...


def open_store(
    *,
    part_size: int = DEFAULT_PART_SIZE,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_base: float = 0.2,
    backoff_max: float = 5.0,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    parts_in_flight: int = 2,
) -> ArtifactStore:
    """The S3 store: one client (and connection pool) per endpoint and credentials, reused
    by every node. ``part_size`` (at least 5 MiB) and ``parts_in_flight`` (parts sent
    concurrently while the next one fills) bound the memory a body uses, about
    ``(parts_in_flight + 1) * part_size``; ``max_attempts`` counts tries per request, with
    exponential backoff between ``backoff_base`` and ``backoff_max`` seconds (full jitter)
    for transient errors."""
    from agent.artifacts.s3 import S3Store

    return S3Store(
        part_size=part_size,
        max_attempts=max_attempts,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        parts_in_flight=parts_in_flight,
    )
