"""The S3 artifact store against a real S3 server process (moto_server on 127.0.0.1).

What is checked is what a consumer of the artifact sees: the object read back with a plain
boto3 client is byte-for-byte the body that was streamed, and after any failure neither an
object nor a pending multipart upload is left. Faults come from a real proxy in front of
moto (:class:`tests.s3server.FaultProxy`), never from patching the code under test.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from agent.artifacts.store import (
    MIN_PART_SIZE,
    ArtifactStore,
    S3Credentials,
    S3Target,
    StoreError,
    open_store,
)
from tests.s3server import S3_ACCESS_KEY, S3_SECRET_KEY, MotoServer

PART = MIN_PART_SIZE
CREDENTIALS = S3Credentials(access_key_id=S3_ACCESS_KEY, secret_access_key=S3_SECRET_KEY)


def pattern(size: int, *, seed: int = 0) -> bytes:
    """``size`` reproducible, non-repeating bytes (so a misplaced part is caught)."""
    out = bytearray()
    block = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{block}".encode()).digest() * 64
        block += 1
    return bytes(out[:size])


async def chunks(data: bytes, *, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def target(server_endpoint: str, bucket: str, key: str, **extra: object) -> S3Target:
    fields: dict[str, object] = {"insecure": True, "credentials": CREDENTIALS, **extra}
    return S3Target(endpoint=server_endpoint, bucket=bucket, key=key, **fields)  # type: ignore[arg-type]


@pytest.fixture
async def store() -> AsyncIterator[ArtifactStore]:
    opened = open_store(part_size=PART, backoff_base=0.01, backoff_max=0.05)
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture(scope="module")
def bucket(moto_s3: MotoServer) -> str:
    return moto_s3.create_bucket("artifacts-store-tests")


@pytest.mark.parametrize(
    "size",
    [0, 1, 1000, PART, PART + 1, 2 * PART, 3 * PART + 12345],
    ids=[
        "empty",
        "one-byte",
        "small",
        "one-part",
        "part-plus-one",
        "two-parts",
        "three-parts-and-tail",
    ],
)
async def test_a_body_is_stored_byte_exact(
    store: ArtifactStore, moto_s3: MotoServer, bucket: str, size: int
) -> None:
    body = pattern(size, seed=size)
    key = f"exact/{size}"
    uploaded = await store.put(target(moto_s3.endpoint, bucket, key), chunks(body))
    assert moto_s3.read_object(bucket, key) == body
    assert uploaded.size == size
    parts = -(-size // PART) if size > PART else 1
    assert uploaded.checksum.endswith(f"-{parts}") == (parts > 1)
    assert moto_s3.pending_uploads(bucket) == []


async def test_a_missing_bucket_is_named(store: ArtifactStore, moto_s3: MotoServer) -> None:
    with pytest.raises(StoreError) as failure:
        await store.put(target(moto_s3.endpoint, "no-such-bucket", "k"), chunks(b"x" * 10))
    message = failure.value.message
    assert "s3://no-such-bucket/k" in message
    assert "bucket does not exist" in message and "NoSuchBucket" in message
    assert failure.value.transient is False
