"""The S3 artifact store: a body streamed into a bucket in parts, retried, verified, cleaned up.

Built on aiobotocore (the official SDK's botocore over aiohttp; docs/artifacts.md compares
it with obstore and miniopy-async on this workload). The upload is written here rather
than with a managed transfer so that every rule of the issue is visible in one place:

- **Bounded memory.** The body is copied chunk by chunk into a part-sized buffer; a full
  buffer is sent as a part (no further copy) and the next one fills meanwhile. A body that
  ends within the first part is one ``PutObject``; a longer one is a multipart upload with
  at most ``parts_in_flight`` parts on the wire. The ``parts_in_flight + 1`` buffers are
  reused, so memory is about ``(parts_in_flight + 1) * part_size`` for any body size.
- **Retries.** A request is retried only when the store's failure is transient (HTTP 5xx,
  429, throttling codes such as ``SlowDown``, a connection reset or timeout, a part whose
  ETag does not match what was sent) and only when what it sends is still in hand: a part
  or a small body is in memory, so it is sent again with exponential backoff and full
  jitter. The response body itself cannot be read twice, so a failure while *reading the
  body* ends the upload, and the exception of the body propagates unchanged.
- **No orphans.** Whatever ends an upload early (a refused or exhausted part, the body's
  own error, the caller's cancellation) aborts its multipart upload in a task the caller
  cannot cancel (a cancellation while the upload is being created lets that request finish
  first); :meth:`S3Store.aclose` waits for those aborts before closing the clients.
  One window remains: a ``CreateMultipartUpload`` whose reply is lost leaves an upload the
  agent never learned the ID of (docs/artifacts.md recommends the bucket lifecycle rule
  ``AbortIncompleteMultipartUpload``).
- **Integrity.** Every request carries ``Content-MD5``, which S3 and MinIO verify on
  receipt; and the ETag the store answers (the MD5 of what it stored, for objects that are
  not SSE-KMS encrypted) is compared with what was sent, so corruption is caught even by a
  store that ignores the header (moto does). A multipart object's ETag is S3's composite
  (the MD5 of the parts' MD5s, ``-N``) and is checked the same way.
- **Texts.** A :class:`~agent.artifacts.store.StoreError` names ``s3://bucket/key``, the
  endpoint, the store's error code and message or the transport's failure; credential
  values never appear (they are also scrubbed from whatever the store said).

One aiobotocore client (with its aiohttp connection pool) is kept per endpoint, region,
credentials, addressing style and CA bundle, and reused by every upload until
:meth:`S3Store.aclose`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import io
import logging
import os
import random
import tempfile
from collections.abc import AsyncIterable, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import aiobotocore.session
import aiohttp
import botocore.exceptions
from botocore import UNSIGNED
from botocore.config import Config

from agent.artifacts.store import (
    MIN_PART_SIZE,
    S3Credentials,
    S3Target,
    StoreError,
    Uploaded,
)

__all__ = ["S3Store"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# S3 error codes that mean "try again later" whatever their HTTP status: Argo's list
# (workflow/artifacts/s3/errors.go, s3TransientErrorCodes, from minio-go's retry.go), and a
# few more that S3-compatible stores answer.
_TRANSIENT_CODES = frozenset(
    {
        "RequestError",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "InternalError",
        "SlowDown",
        "ServiceUnavailable",
        "TooManyRequests",
        "OperationAborted",
        "BadDigest",  # the bytes were damaged in transit; what is sent again is intact
    }
)
# What each refusal means for the person reading the node's message.
_EXPLAINED_CODES = {
    "NoSuchBucket": "the bucket does not exist",
    "InvalidAccessKeyId": "the access key is not known to the store (check the credentials)",
    "SignatureDoesNotMatch": "the request signature does not match "
    "(check the secret key and the region)",
    "AccessDenied": "access denied (check the credentials' permissions for this bucket)",
    "InvalidBucketName": "the bucket name is not valid",
    "NoSuchUpload": "the multipart upload no longer exists (aborted by someone else?)",
    "EntityTooLarge": "the object is larger than the store accepts",
}
_SCRUB_MIN_LENGTH = 8
# Multipart uploads allow at most this many parts.
_MAX_PARTS = 10_000


@dataclass(frozen=True)
class _ClientKey:
    """What makes two uploads share a client: where they go and as whom."""

    endpoint: str
    insecure: bool
    region: str
    credentials: S3Credentials | None
    addressing_style: str
    ca_pem: str | None


class _Failure(Exception):
    """One request failed; ``transient`` says whether sending it again may succeed."""

    def __init__(self, cause: str, *, transient: bool) -> None:
        super().__init__(cause)
        self.cause = cause
        self.transient = transient


class _PartReader(io.RawIOBase):
    """A part's bytes as a seekable stream, so that the HTTP client sends them in small
    reads: given ``bytes`` or a ``bytearray`` body, aiohttp copies the whole part (a slice,
    then a join with the headers, then the socket buffer), about two more parts in memory
    per part in flight (measured: docs/artifacts.md). botocore seeks it back to sign it."""

    def __init__(self, data: bytes | bytearray) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._position = 0

    def __len__(self) -> int:
        return len(self._view)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, min(len(self._view), base[whence] + offset))
        return self._position

    def readinto(self, buffer: Any) -> int:
        taken = self._view[self._position : self._position + len(buffer)]
        buffer[: len(taken)] = taken
        self._position += len(taken)
        return len(taken)

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else self._position + size
        taken = bytes(self._view[self._position : end])
        self._position += len(taken)
        return taken

    def close(self) -> None:
        # A slice still held elsewhere keeps the view exported; the buffer is never resized,
        # so leaving the view to the garbage collector is harmless.
        with contextlib.suppress(BufferError):
            self._view.release()
        super().close()


class _Mismatch(Exception):
    """The store's ETag is not the MD5 of what was sent."""


class S3Store:
    """:class:`~agent.artifacts.store.ArtifactStore` for S3 and S3-compatible stores."""

    def __init__(
        self,
        *,
        part_size: int,
        max_attempts: int,
        backoff_base: float,
        backoff_max: float,
        connect_timeout: float,
        read_timeout: float,
        parts_in_flight: int,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if parts_in_flight < 1:
            raise ValueError("parts_in_flight must be at least 1")
        self._part_size = part_size
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._parts_in_flight = parts_in_flight
        self._config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # Retries are decided here (what is in hand can be resent), not by botocore.
            retries={"total_max_attempts": 1},
            # Content-MD5 is sent and checked here; botocore's default CRC32 would hash
            # every part a second time.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=max(10, 2 * parts_in_flight),
        )
        self._session = aiobotocore.session.get_session()
        self._stack = AsyncExitStack()
        self._clients: dict[_ClientKey, Any] = {}
        self._client_lock = asyncio.Lock()
        self._aborts: set[asyncio.Future[Any]] = set()  # cleanup that outlives its caller
        self._closed = False
        self._ca_dir: str | None = None

    # -- the port ---------------------------------------------------------------------

    async def put(self, target: S3Target, body: AsyncIterable[bytes]) -> Uploaded:
        if self._closed:
            raise RuntimeError("the artifact store is closed")
        try:
            client = await self._client(target)
        except _Failure as failure:
            raise _store_error(target, failure) from None
        upload = _Upload(store=self, client=client, target=target)
        return await upload.run(body)

    async def aclose(self) -> None:
        self._closed = True
        while self._aborts:  # an upload started by a cancelled caller adds its abort
            await asyncio.gather(*list(self._aborts), return_exceptions=True)
        await self._stack.aclose()
        self._clients.clear()

    # -- clients ----------------------------------------------------------------------

    async def _client(self, target: S3Target) -> Any:
        key = _ClientKey(
            endpoint=target.endpoint,
            insecure=target.insecure,
            region=target.region or "us-east-1",
            credentials=target.credentials,
            addressing_style=target.addressing_style,
            ca_pem=target.ca_pem,
        )
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._client_lock:
            client = self._clients.get(key)
            if client is None:
                client = await self._stack.enter_async_context(self._create_client(key))
                self._clients[key] = client
        return client

    def _create_client(self, key: _ClientKey) -> Any:
        config = self._config.merge(
            Config(
                s3={"addressing_style": _addressing_style(key.endpoint, key.addressing_style)},
                signature_version=UNSIGNED if key.credentials is None else "s3v4",
            )
        )
        credentials: dict[str, str | None] = {}
        if key.credentials is not None:
            credentials = {
                "aws_access_key_id": key.credentials.access_key_id,
                "aws_secret_access_key": key.credentials.secret_access_key,
                "aws_session_token": key.credentials.session_token,
            }
        endpoint_url = None
        if key.endpoint:
            endpoint_url = f"{'http' if key.insecure else 'https'}://{key.endpoint}"
        verify: str | None = None
        if key.ca_pem is not None and not key.insecure:
            verify = self._ca_file(key.ca_pem)
        return self._session.create_client(
            "s3",
            region_name=key.region,
            endpoint_url=endpoint_url,
            config=config,
            verify=verify,
            **credentials,
        )

    def _ca_file(self, pem: str) -> str:
        """A file holding ``pem`` (botocore takes CA bundles as paths), one per distinct
        bundle, in a directory removed by :meth:`aclose`."""
        if self._ca_dir is None:
            self._ca_dir = self._stack.enter_context(
                tempfile.TemporaryDirectory(prefix="agent-s3-ca-")
            )
        name = hashlib.sha256(pem.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        path = os.path.join(self._ca_dir, f"{name}.pem")
        if not os.path.exists(path):
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as out:
                out.write(pem)
        return path

    # -- retries ----------------------------------------------------------------------

    async def _attempt(self, call: Callable[[], Awaitable[T]], *, what: str, target: S3Target) -> T:
        """``call`` until it succeeds, fails for good, or runs out of attempts."""
        attempt = 1
        while True:
            try:
                return await _classified(call)
            except _Failure as failure:
                if not failure.transient or attempt >= self._max_attempts:
                    if failure.transient:
                        raise _Failure(
                            f"{what}: {failure.cause} (gave up after {attempt} attempts)",
                            transient=True,
                        ) from None
                    raise _Failure(f"{what}: {failure.cause}", transient=False) from None
                delay = min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1))
                log.debug(
                    "retrying %s of %s after %s (attempt %d)",
                    what,
                    target.url,
                    _scrub(failure.cause, target.credentials),
                    attempt,
                )
                await asyncio.sleep(random.uniform(0, delay))
                attempt += 1

    def _abort_in_background(self, client: Any, target: S3Target, upload_id: str) -> None:
        """Abort ``upload_id`` in a task of its own: a cancelled caller still cleans up."""
        task = asyncio.get_running_loop().create_task(self._abort(client, target, upload_id))
        self._aborts.add(task)
        task.add_done_callback(self._aborts.discard)

    async def _abort(self, client: Any, target: S3Target, upload_id: str) -> None:
        try:
            await self._attempt(
                lambda: client.abort_multipart_upload(
                    Bucket=target.bucket, Key=target.key, UploadId=upload_id
                ),
                what="aborting the multipart upload",
                target=target,
            )
        except _Failure as failure:
            # Nothing is left to tell: the node already failed. The bucket's lifecycle
            # rule is the last line (docs/artifacts.md).
            log.warning(
                "could not abort the multipart upload of %s: %s",
                target.url,
                _scrub(failure.cause, target.credentials),
            )


class _Upload:
    """One ``put``: single request or multipart, with its cleanup."""

    def __init__(self, *, store: S3Store, client: Any, target: S3Target) -> None:
        self._store = store
        self._client = client
        self._target = target
        self._upload_id: str | None = None
        self._parts: dict[int, tuple[str, bytes]] = {}  # number -> (etag, md5 digest)
        self._size = 0
        self._free: list[bytearray] = []
        self._allocated = 0

    async def run(self, body: AsyncIterable[bytes]) -> Uploaded:
        completed = False
        in_flight: set[asyncio.Task[None]] = set()
        try:
            uploaded = await self._stream(body, in_flight)
            completed = True
            return uploaded
        except _Failure as failure:
            raise _store_error(self._target, failure) from None
        finally:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            if not completed and self._upload_id is not None:
                self._store._abort_in_background(self._client, self._target, self._upload_id)

    async def _stream(
        self, body: AsyncIterable[bytes], in_flight: set[asyncio.Task[None]]
    ) -> Uploaded:
        part_size = self._store._part_size
        filling = self._buffer()
        fill = 0
        number = 0
        async for chunk in body:
            self._size += len(chunk)
            with memoryview(chunk) as rest:
                while rest:
                    if fill == part_size:
                        # Full, and more bytes follow (so a body of exactly one part stays
                        # a single PutObject): the buffer goes out as it is, no copy.
                        number += 1
                        await self._send_part(number, filling, in_flight)
                        filling, fill = self._buffer(), 0
                    taken = min(part_size - fill, len(rest))
                    filling[fill : fill + taken] = rest[:taken]
                    fill += taken
                    rest = rest[taken:]
        last = filling if fill == part_size else bytes(memoryview(filling)[:fill])
        if number == 0:
            return await self._put_single(last)
        if fill:
            number += 1
            await self._send_part(number, last, in_flight)
        while in_flight:
            await self._wait_one(in_flight)
        return await self._complete()

    def _buffer(self) -> bytearray:
        """A part-sized buffer not being sent. At most ``parts_in_flight + 1`` exist per
        upload and they are reused, so memory stays flat however long the body (and the
        allocator sees no churn of part-sized blocks)."""
        if self._free:
            return self._free.pop()
        self._allocated += 1
        assert self._allocated <= self._store._parts_in_flight + 1
        return bytearray(self._store._part_size)

    async def _send_part(
        self, number: int, part: bytes | bytearray, in_flight: set[asyncio.Task[None]]
    ) -> None:
        if number > _MAX_PARTS:
            raise _Failure(
                f"the body needs more than {_MAX_PARTS} parts of {self._store._part_size} bytes",
                transient=False,
            )
        if self._upload_id is None:
            self._upload_id = await self._create()
        while len(in_flight) >= self._store._parts_in_flight:
            await self._wait_one(in_flight)
        in_flight.add(asyncio.get_running_loop().create_task(self._upload_part(number, part)))

    @staticmethod
    async def _wait_one(in_flight: set[asyncio.Task[None]]) -> None:
        done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            in_flight.discard(task)
            task.result()  # a failed part ends the upload

    async def _create(self) -> str:
        """Start the multipart upload. Shielded: a caller cancelled while the request is on
        the wire would never learn the upload's ID, so the request finishes on its own and
        the upload it created is aborted."""
        target, store, client = self._target, self._store, self._client
        starting = asyncio.ensure_future(
            store._attempt(
                lambda: client.create_multipart_upload(Bucket=target.bucket, Key=target.key),
                what="starting the multipart upload",
                target=target,
            )
        )
        try:
            response = await asyncio.shield(starting)
        except asyncio.CancelledError:

            def abort_when_started(done: asyncio.Future[Any]) -> None:
                if not done.cancelled() and done.exception() is None:
                    store._abort_in_background(client, target, str(done.result()["UploadId"]))

            starting.add_done_callback(abort_when_started)
            store._aborts.add(starting)  # aclose() waits for it, then for its abort
            starting.add_done_callback(store._aborts.discard)
            raise
        return str(response["UploadId"])

    async def _upload_part(self, number: int, part: bytes | bytearray) -> None:
        try:
            await self._send_upload_part(number, part)
        finally:
            if isinstance(part, bytearray):
                self._free.append(part)  # sent or given up: the buffer can be filled again

    async def _send_upload_part(self, number: int, part: bytes | bytearray) -> None:
        digest = await _md5(part)
        content_md5 = base64.b64encode(digest).decode("ascii")
        target, upload_id = self._target, self._upload_id

        async def send() -> str:
            response = await self._client.upload_part(
                Bucket=target.bucket,
                Key=target.key,
                UploadId=upload_id,
                PartNumber=number,
                Body=_PartReader(part),
                ContentMD5=content_md5,
            )
            etag = str(response["ETag"])
            _check_etag(etag, digest.hex())
            return etag

        etag = await self._store._attempt(send, what=f"uploading part {number}", target=target)
        self._parts[number] = (etag, digest)

    async def _put_single(self, data: bytes | bytearray) -> Uploaded:
        digest = await _md5(data)
        content_md5 = base64.b64encode(digest).decode("ascii")
        target = self._target

        async def send() -> str:
            response = await self._client.put_object(
                Bucket=target.bucket, Key=target.key, Body=_PartReader(data), ContentMD5=content_md5
            )
            etag = str(response["ETag"])
            _check_etag(etag, digest.hex())
            return etag

        etag = await self._store._attempt(send, what="uploading the object", target=target)
        return Uploaded(size=len(data), etag=etag, checksum=f"md5:{digest.hex()}")

    async def _complete(self) -> Uploaded:
        target, upload_id = self._target, self._upload_id
        numbers = sorted(self._parts)
        parts = [{"PartNumber": n, "ETag": self._parts[n][0]} for n in numbers]
        composite = (
            hashlib.md5(
                b"".join(self._parts[n][1] for n in numbers), usedforsecurity=False
            ).hexdigest()
            + f"-{len(numbers)}"
        )

        sent_before = False

        async def send() -> str:
            nonlocal sent_before
            try:
                response = await self._client.complete_multipart_upload(
                    Bucket=target.bucket,
                    Key=target.key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
            except botocore.exceptions.ClientError as error:
                code = error.response.get("Error", {}).get("Code")
                if sent_before and code == "NoSuchUpload":
                    # An earlier attempt completed the upload and its answer was lost: the
                    # object is ours if its ETag is the composite of the parts sent.
                    stored = await self._stored_etag()
                    if stored is not None and stored.strip('"').lower() == composite:
                        return stored
                raise
            finally:
                sent_before = True
            etag = str(response["ETag"])
            _check_etag(etag, composite)
            return etag

        etag = await self._store._attempt(
            send, what="completing the multipart upload", target=target
        )
        return Uploaded(size=self._size, etag=etag, checksum=f"md5:{composite}")

    async def _stored_etag(self) -> str | None:
        try:
            head = await self._client.head_object(Bucket=self._target.bucket, Key=self._target.key)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
            return None
        return str(head.get("ETag", "")) or None


def _store_error(target: S3Target, failure: _Failure) -> StoreError:
    where = f" at {target.endpoint}" if target.endpoint else ""
    cause = _scrub(failure.cause, target.credentials)
    return StoreError(
        f"cannot store the artifact in {target.url}{where}: {cause}",
        transient=failure.transient,
    )


async def _md5(data: bytes | bytearray) -> bytes:
    """The MD5 of a part, hashed in a thread (hashlib releases the GIL): ~15 ms per 8 MiB
    that the event loop, serving every other node, does not wait for."""
    if len(data) < 1 << 20:
        return hashlib.md5(data, usedforsecurity=False).digest()
    return await asyncio.to_thread(lambda: hashlib.md5(data, usedforsecurity=False).digest())


async def _classified(call: Callable[[], Awaitable[T]]) -> T:
    """Run one request; its failure as a :class:`_Failure` that says whether it is transient."""
    try:
        return await call()
    except botocore.exceptions.ClientError as error:
        raise _client_failure(error) from None
    except botocore.exceptions.SSLError as error:
        # A certificate that does not verify will not verify on the next try either.
        inner = error.kwargs.get("error")
        detail = f" ({_inner_text(inner)})" if inner is not None else ""
        raise _Failure(
            f"TLS with the store failed: its certificate could not be verified{detail}"
            " (the repository's caSecret gives the CA to trust)",
            transient=False,
        ) from None
    except (
        botocore.exceptions.ConnectionError,
        botocore.exceptions.HTTPClientError,
        TimeoutError,
    ) as error:
        raise _Failure(_transport_text(error), transient=True) from None
    except _Mismatch as mismatch:
        raise _Failure(str(mismatch), transient=True) from None
    except botocore.exceptions.ParamValidationError as error:
        # refused before sending: a bucket name or key S3 cannot take
        raise _Failure(_one_line(str(error)), transient=False) from None
    except botocore.exceptions.BotoCoreError as error:
        raise _Failure(_one_line(str(error)), transient=False) from None


def _client_failure(error: botocore.exceptions.ClientError) -> _Failure:
    details = error.response.get("Error", {})
    code = str(details.get("Code", "") or "")
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    said = str(details.get("Message", "") or "")
    explained = _EXPLAINED_CODES.get(code) or (said or "the store refused the request")
    if code == "NoSuchBucket" and status == 0:
        status = 404
    label = ", ".join(part for part in (code, f"HTTP {status}" if status else "") if part)
    text = f"{explained} ({label})" if label else explained
    if said and code in _EXPLAINED_CODES and said != explained:
        text = f"{text}: {said}"
    transient = code in _TRANSIENT_CODES or status >= 500 or status == 429
    return _Failure(text, transient=transient)


def _transport_text(error: Exception) -> str:
    """A transport failure in a sentence, without botocore's URL-with-query noise."""
    inner = getattr(error, "kwargs", {}).get("error")
    if isinstance(error, botocore.exceptions.EndpointConnectionError):
        # aiobotocore reports every aiohttp connection error as this one: a refused
        # connection and one reset mid-request are told apart by the error it wraps.
        if inner is None or isinstance(inner, aiohttp.ClientConnectorError):
            return "cannot connect to the store"
        return f"the connection to the store broke ({_inner_text(inner)})"
    if isinstance(error, botocore.exceptions.ConnectTimeoutError):
        return "timed out connecting to the store"
    if isinstance(error, botocore.exceptions.ReadTimeoutError):
        return "timed out waiting for the store's answer"
    if isinstance(error, botocore.exceptions.ConnectionClosedError):
        return "the store closed the connection"
    if isinstance(error, TimeoutError):
        return "timed out talking to the store"
    return f"connection to the store failed ({type(error).__name__})"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _inner_text(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _check_etag(etag: str, expected_md5: str) -> None:
    """Compare the store's ETag with the MD5 of what was sent, when the ETag is one.

    SSE-KMS objects and some S3-compatible stores answer ETags that are not MD5s; those
    are left to the store's own ``Content-MD5`` check.
    """
    value = etag.strip('"').lower()
    expected = expected_md5.lower()
    if not _looks_like_md5(value):
        return
    if value != expected:
        raise _Mismatch(
            f"the store's ETag {value} is not the MD5 of what was sent ({expected}): "
            "the bytes were damaged on the way"
        )


def _looks_like_md5(etag: str) -> bool:
    digest, _, parts = etag.partition("-")
    if len(digest) != 32 or (parts and not parts.isdigit()):
        return False
    try:
        binascii.unhexlify(digest)
    except (binascii.Error, ValueError):
        return False
    return True


def _addressing_style(endpoint: str, chosen: str) -> str:
    """botocore's name for Argo's ``addressingStyle``. Auto-detect (``""``) is
    virtual-hosted on AWS and path-style elsewhere (MinIO, Ceph, moto), as minio-go's
    ``BucketLookupAuto``, which Argo's S3 driver uses for it, decides."""
    if chosen == "path":
        return "path"
    if chosen == "virtual-hosted":
        return "virtual"
    if chosen:
        raise _Failure(
            f"addressingStyle {chosen!r} is not one of '', 'path', 'virtual-hosted'",
            transient=False,
        )
    host = endpoint.rsplit(":", 1)[0].lower()
    return "virtual" if not host or host.endswith("amazonaws.com") else "path"


def _scrub(text: str, credentials: S3Credentials | None) -> str:
    """``text`` with any credential value replaced: a store may echo what it was sent.

    Values shorter than 8 characters are left alone (no real key is that short, and
    replacing them would garble the sentence around them)."""
    if credentials is None:
        return text
    for value in (
        credentials.secret_access_key,
        credentials.session_token,
        credentials.access_key_id,
    ):
        if value and len(value) >= _SCRUB_MIN_LENGTH:
            text = text.replace(value, "<redacted>")
    return text
