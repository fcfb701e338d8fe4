"""The S3 artifact store against a real S3 server process (moto_server on 127.0.0.1).

What is checked is what a consumer of the artifact sees: the object read back with a plain
boto3 client is byte-for-byte the body that was streamed, and after any failure neither an
object nor a pending multipart upload is left. Faults come from a real proxy in front of
moto (:class:`tests.s3server.FaultProxy`), never from patching the code under test.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from agent.artifacts.store import (
    MIN_PART_SIZE,
    ArtifactStore,
    S3Credentials,
    S3Target,
    StoreError,
    open_store,
)
from tests.s3server import S3_ACCESS_KEY, S3_SECRET_KEY, FaultProxy, MotoServer, completions
from tests.servers import TestCA

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


@pytest.fixture
def proxy(moto_s3: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(upstream=moto_s3.endpoint) as running:
        yield running


def _part_puts(line: str) -> bool:
    return line.startswith("PUT ") and "partNumber=" in line


@pytest.mark.parametrize("action", ["503", "500", "cut", "corrupt"])
async def test_transient_faults_on_parts_are_retried(
    store: ArtifactStore, moto_s3: MotoServer, bucket: str, proxy: FaultProxy, action: str
) -> None:
    """Two failures of part uploads (SlowDown, InternalError, a connection cut mid-body, a
    damaged byte that only the ETag check catches, moto verifying no checksum) are sent
    again from memory and the object arrives intact."""
    body = pattern(3 * PART + 7, seed=3)
    key = f"retried/{action}"
    proxy.add(action, times=2)
    uploaded = await store.put(target(proxy.endpoint, bucket, key), chunks(body))
    assert moto_s3.read_object(bucket, key) == body
    assert uploaded.size == len(body)
    assert proxy.count(_part_puts) == 4 + 2  # four parts, two of them sent twice
    assert moto_s3.pending_uploads(bucket) == []


async def test_a_small_body_is_retried_too(
    store: ArtifactStore, moto_s3: MotoServer, bucket: str, proxy: FaultProxy
) -> None:
    body = pattern(1000, seed=4)
    proxy.add("503", times=2, matches=lambda request: request.method == "PUT")
    await store.put(target(proxy.endpoint, bucket, "retried/small"), chunks(body))
    assert moto_s3.read_object(bucket, "retried/small") == body


async def test_a_completion_whose_answer_was_lost_is_recognised(
    store: ArtifactStore, moto_s3: MotoServer, bucket: str, proxy: FaultProxy
) -> None:
    """The store completed the upload but the answer never came: the retry finds the upload
    gone (NoSuchUpload) and the object there with the parts' composite ETag, so the put
    succeeds instead of failing a node whose artifact is stored."""
    body = pattern(2 * PART + 99, seed=5)
    proxy.add("lose", times=1, matches=completions)
    uploaded = await store.put(target(proxy.endpoint, bucket, "lost-answer"), chunks(body))
    assert moto_s3.read_object(bucket, "lost-answer") == body
    assert uploaded.checksum.endswith("-3")
    assert proxy.count(lambda line: line.startswith("POST ") and "uploadId=" in line) == 2


@pytest.mark.parametrize("action", ["503", "cut"])
async def test_persistent_faults_fail_and_abort_the_upload(
    store: ArtifactStore, moto_s3: MotoServer, proxy: FaultProxy, action: str
) -> None:
    bucket = moto_s3.create_bucket(f"persistent-{action}")
    proxy.add(action, times=1000)
    with pytest.raises(StoreError) as failure:
        await store.put(target(proxy.endpoint, bucket, "k"), chunks(pattern(3 * PART)))
    await store.aclose()  # waits for the abort it started
    message = failure.value.message
    assert message.startswith(f"cannot store the artifact in s3://{bucket}/k at {proxy.endpoint}")
    assert "gave up after 5 attempts" in message
    # A cut is seen as a broken write or, when the half body was already handed to the
    # kernel, as the store closing the connection before answering: either names it.
    causes = {
        "503": ("SlowDown, HTTP 503",),
        "cut": ("the connection to the store broke", "the store closed the connection"),
    }[action]
    assert any(cause in message for cause in causes), message
    assert failure.value.transient is True
    assert S3_SECRET_KEY not in message and S3_ACCESS_KEY not in message
    assert moto_s3.pending_uploads(bucket) == []
    assert not moto_s3.object_exists(bucket, "k")


async def test_a_refusal_is_not_retried(
    store: ArtifactStore, moto_s3: MotoServer, proxy: FaultProxy
) -> None:
    bucket = moto_s3.create_bucket("refused-part")
    proxy.add("403", times=1000)
    with pytest.raises(StoreError) as failure:
        await store.put(target(proxy.endpoint, bucket, "k"), chunks(pattern(2 * PART + 1)))
    await store.aclose()
    assert (
        "access denied" in failure.value.message
        and "AccessDenied, HTTP 403" in failure.value.message
    )
    assert failure.value.transient is False
    assert proxy.count(_part_puts) <= 2  # each part in flight tried once
    assert moto_s3.pending_uploads(bucket) == []


class BodyBroke(Exception):
    pass


async def test_a_failing_body_propagates_and_aborts(
    store: ArtifactStore, moto_s3: MotoServer
) -> None:
    """The response body cannot be read again: its own error ends the upload unchanged."""
    bucket = moto_s3.create_bucket("failing-body")

    async def body() -> AsyncIterator[bytes]:
        async for chunk in chunks(pattern(3 * PART)):
            yield chunk
        raise BodyBroke("the target reset the connection")

    with pytest.raises(BodyBroke):
        await store.put(target(moto_s3.endpoint, bucket, "k"), body())
    await store.aclose()
    assert moto_s3.pending_uploads(bucket) == []
    assert not moto_s3.object_exists(bucket, "k")


async def test_cancellation_mid_upload_aborts(
    store: ArtifactStore, moto_s3: MotoServer, proxy: FaultProxy
) -> None:
    """A node cancelled while a part is on the wire leaves no pending upload behind."""
    bucket = moto_s3.create_bucket("cancelled-upload")
    proxy.add("hold", times=1)
    put = asyncio.ensure_future(
        store.put(target(proxy.endpoint, bucket, "k"), chunks(pattern(3 * PART)))
    )
    for _ in range(1500):  # bounded: 30 s
        if proxy.count(_part_puts):
            break
        await asyncio.sleep(0.02)
    assert len(moto_s3.pending_uploads(bucket)) == 1  # the upload did start
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    proxy.release()
    await store.aclose()
    assert moto_s3.pending_uploads(bucket) == []
    assert not moto_s3.object_exists(bucket, "k")


@pytest.mark.parametrize(
    ("bucket_name", "key", "named"),
    [("Not_A_Bucket!", "k", 'Invalid bucket name "Not_A_Bucket!"'), ("a-bucket", "", "Key")],
    ids=["bad-bucket-name", "empty-key"],
)
async def test_a_location_s3_cannot_take_is_refused_before_sending(
    store: ArtifactStore, moto_s3: MotoServer, bucket_name: str, key: str, named: str
) -> None:
    with pytest.raises(StoreError) as failure:
        await store.put(target(moto_s3.endpoint, bucket_name, key), chunks(b"x"))
    assert failure.value.message.startswith(
        f"cannot store the artifact in s3://{bucket_name}/{key}"
    )
    assert named in failure.value.message
    assert failure.value.transient is False


async def test_cancellation_while_the_upload_starts_aborts_it(
    store: ArtifactStore, moto_s3: MotoServer, proxy: FaultProxy
) -> None:
    """Cancelled while CreateMultipartUpload is on the wire: the agent has no upload ID yet;
    the request is let finish and the upload it created is aborted."""
    bucket = moto_s3.create_bucket("cancelled-start")
    proxy.add("hold", times=1, matches=lambda request: request.target.endswith("?uploads"))
    put = asyncio.ensure_future(
        store.put(target(proxy.endpoint, bucket, "k"), chunks(pattern(2 * PART)))
    )
    for _ in range(1500):  # bounded: 30 s
        if proxy.count(lambda line: line.startswith("POST ") and "?uploads" in line):
            break
        await asyncio.sleep(0.02)
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    proxy.release()
    await store.aclose()
    assert proxy.count(lambda line: line.startswith("DELETE ") and "uploadId=" in line) == 1
    assert moto_s3.pending_uploads(bucket) == []


async def test_an_unreachable_store_is_named(store: ArtifactStore, bucket: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(StoreError) as failure:
        await store.put(target(endpoint, bucket, "k"), chunks(b"x"))
    assert failure.value.message == (
        f"cannot store the artifact in s3://{bucket}/k at {endpoint}: uploading the object: "
        "cannot connect to the store (gave up after 5 attempts)"
    )
    assert failure.value.transient is True


@pytest.mark.parametrize("wrong", ["secret", "access-key"])
async def test_wrong_credentials_are_named_without_their_values(
    store: ArtifactStore, moto_s3_auth: MotoServer, wrong: str
) -> None:
    user = moto_s3_auth.user
    assert user is not None
    bucket = moto_s3_auth.create_bucket("checked-credentials")
    good = S3Credentials(access_key_id=user.access_key_id, secret_access_key=user.secret_access_key)
    await store.put(target(moto_s3_auth.endpoint, bucket, "ok", credentials=good), chunks(b"fine"))
    assert moto_s3_auth.read_object(bucket, "ok") == b"fine"

    if wrong == "secret":
        bad = S3Credentials(user.access_key_id, "not-the-secret-key-0123456789abcdefghijkl")
        cause = "the request signature does not match (check the secret key and the region)"
    else:
        bad = S3Credentials("AKIANOTAKNOWNKEY0000", user.secret_access_key)
        cause = "the access key is not known to the store (check the credentials)"
    for size in (10, 2 * PART + 1):  # a single request and a multipart upload
        with pytest.raises(StoreError) as failure:
            await store.put(
                target(moto_s3_auth.endpoint, bucket, "bad", credentials=bad), chunks(pattern(size))
            )
        message = failure.value.message
        assert f"s3://{bucket}/bad" in message and cause in message
        assert failure.value.transient is False
        for value in (bad.secret_access_key, bad.access_key_id, user.secret_access_key):
            assert value not in message
            assert value not in repr(failure.value)
    assert not moto_s3_auth.object_exists(bucket, "bad")


async def test_a_store_behind_tls_is_trusted_through_its_ca(
    store: ArtifactStore, moto_s3_tls: MotoServer, test_ca: TestCA
) -> None:
    """Argo's ``caSecret``: the store's certificate is verified against the given CA, and
    without it (the system's roots) the connection is refused, named as a TLS failure."""
    bucket = moto_s3_tls.create_bucket("tls-bucket")
    body = pattern(PART + 10, seed=6)
    trusted = target(moto_s3_tls.endpoint, bucket, "k", insecure=False, ca_pem=test_ca.pem.decode())
    await store.put(trusted, chunks(body))
    assert moto_s3_tls.read_object(bucket, "k") == body

    untrusted = target(moto_s3_tls.endpoint, bucket, "k2", insecure=False)
    with pytest.raises(StoreError) as failure:
        await store.put(untrusted, chunks(b"x"))
    assert f"s3://{bucket}/k2" in failure.value.message
    assert "TLS with the store failed: its certificate could not be verified" in (
        failure.value.message
    )
    assert failure.value.transient is False
    assert not moto_s3_tls.object_exists(bucket, "k2")


@pytest.mark.parametrize("style", ["path", ""])
async def test_addressing_styles_reach_a_path_style_store(
    store: ArtifactStore, moto_s3: MotoServer, bucket: str, style: str
) -> None:
    await store.put(
        target(moto_s3.endpoint, bucket, f"style/{style or 'auto'}", addressing_style=style),
        chunks(b"addressed"),
    )
    assert moto_s3.read_object(bucket, f"style/{style or 'auto'}") == b"addressed"


async def test_an_unknown_addressing_style_is_named(
    store: ArtifactStore, moto_s3: MotoServer, bucket: str
) -> None:
    with pytest.raises(StoreError) as failure:
        await store.put(target(moto_s3.endpoint, bucket, "k", addressing_style="dns"), chunks(b"x"))
    assert failure.value.message == (
        f"cannot store the artifact in s3://{bucket}/k at {moto_s3.endpoint}: "
        "addressingStyle 'dns' is not one of '', 'path', 'virtual-hosted'"
    )
    assert failure.value.transient is False


def test_credentials_never_show_in_a_repr() -> None:
    shown = repr(target("127.0.0.1:1", "b", "k"))
    assert S3_SECRET_KEY not in shown and S3_ACCESS_KEY not in shown
    assert "S3Credentials()" in shown


def test_part_sizes_below_s3s_minimum_are_refused() -> None:
    with pytest.raises(ValueError, match="part_size must be at least 5242880"):
        open_store(part_size=PART - 1)
