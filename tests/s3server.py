"""A real S3 server for the artifact tests: moto's standalone server, and a proxy that breaks it.

* :class:`MotoServer` runs ``moto_server -H 127.0.0.1 -p PORT`` as a child process (the S3
  API over HTTP, path-style addressing) and offers a plain boto3 client to create buckets
  and read objects back, so that what the agent stored is checked by a client that is not
  the agent's. ``auth=True`` starts moto with its IAM checks on (``INITIAL_NO_AUTH_ACTION_COUNT``:
  the first few requests set up a user and its keys; every later request must be signed by
  a known key with the right secret), which is how wrong credentials are tested: by default
  moto accepts any.
* :class:`FaultProxy` is an HTTP proxy on 127.0.0.1 in front of moto that reads each request
  whole and then forwards it, or answers an S3 error itself (``503 SlowDown``, ``500
  InternalError``), cuts the connection halfway through the request body, damages one byte
  of the body, or holds the request until released. Rules match requests by method and query
  (part uploads are ``PUT ...?partNumber=N&uploadId=...``) and fire a set number of times.
* The fixtures ``moto_s3``, ``moto_s3_auth`` and ``moto_s3_tls`` (HTTPS with a certificate
  of the session's test CA; all session-scoped) skip, with the reason
  printed, when moto cannot be started here.

Only 127.0.0.1 is ever contacted; every server is stopped in a ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import TestCA

__all__ = [
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "FaultProxy",
    "FaultRule",
    "MotoServer",
    "moto_s3",
    "moto_s3_auth",
    "moto_s3_tls",
]

# Credentials for the default (no-auth) server: moto accepts any, these look real so that
# tests can check they never appear in a message.
S3_ACCESS_KEY = "AKIAARTIFACTSTESTKEY1"
S3_SECRET_KEY = "artifacts-test-secret-key/0123456789abcdefXYZ"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _moto_command(port: int) -> list[str]:
    beside = Path(sys.executable).parent / "moto_server"
    if beside.exists():
        return [str(beside), "-H", "127.0.0.1", "-p", str(port)]
    found = shutil.which("moto_server")
    if found:
        return [found, "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


@dataclass
class IamUser:
    """A user that moto's IAM mode knows, with its key pair."""

    access_key_id: str
    secret_access_key: str


class MotoServer:
    """``moto_server`` on 127.0.0.1 at a free port, as a child process."""

    def __init__(self, *, auth: bool = False, tls: TestCA | None = None) -> None:
        self.port = _free_port()
        self.auth = auth
        self.tls = tls
        self.user: IamUser | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log = Path(os.environ.get("TMPDIR", "/tmp")) / f"moto-{self.port}.log"

    @property
    def endpoint(self) -> str:
        """``host:port`` as Argo's ``S3Artifact.endpoint`` (no scheme)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    def start(self, *, timeout: float = 30.0) -> None:
        env = dict(os.environ)
        if self.auth:
            # create_user, create_access_key, put_user_policy: then every request is checked.
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        command = _moto_command(self.port)
        context = None
        if self.tls is not None:
            cert, key = self.tls.server_files()
            command += ["-c", cert, "-k", key]
            context = ssl.create_default_context(cafile=self.tls.pem_path)
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {self._log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1, context=context):
                    break
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"moto_server did not answer within {timeout}s")
        if self.auth:
            self.user = self._create_user()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def _create_user(self) -> IamUser:
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
        )
        iam.create_user(UserName="artifacts")
        key = iam.create_access_key(UserName="artifacts")["AccessKey"]
        iam.put_user_policy(
            UserName="artifacts",
            PolicyName="all-s3",
            PolicyDocument=(
                '{"Version":"2012-10-17","Statement":'
                '[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}'
            ),
        )
        return IamUser(key["AccessKeyId"], key["SecretAccessKey"])

    def client(self) -> Any:
        """A plain boto3 S3 client (path-style), signed as the IAM user in auth mode."""
        import boto3
        from botocore.config import Config

        access, secret = S3_ACCESS_KEY, S3_SECRET_KEY
        if self.user is not None:
            access, secret = self.user.access_key_id, self.user.secret_access_key
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}),
            verify=self.tls.pem_path if self.tls is not None else None,
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def read_object(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def object_exists(self, bucket: str, key: str) -> bool:
        listing = self.client().list_objects_v2(Bucket=bucket, Prefix=key)
        return any(item["Key"] == key for item in listing.get("Contents", []))

    def pending_uploads(self, bucket: str) -> list[dict[str, Any]]:
        """Multipart uploads started and neither completed nor aborted."""
        uploads: list[dict[str, Any]] = (
            self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        )
        return uploads


@contextlib.contextmanager
def _running(server: MotoServer) -> Iterator[MotoServer]:
    try:
        server.start()
    except (OSError, RuntimeError) as error:
        reason = f"moto_server cannot start here: {error}"
        print(reason, file=sys.stderr)
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoServer]:
    """moto's S3 server accepting any credentials."""
    with _running(MotoServer()) as server:
        yield server


@pytest.fixture(scope="session")
def moto_s3_tls(test_ca: TestCA) -> Iterator[MotoServer]:
    """moto's S3 server over HTTPS, its certificate issued by the session's test CA."""
    with _running(MotoServer(tls=test_ca)) as server:
        yield server


@pytest.fixture(scope="session")
def moto_s3_auth() -> Iterator[MotoServer]:
    """moto's S3 server checking every request's signature against its IAM users."""
    with _running(MotoServer(auth=True)) as server:
        yield server


# -- the fault-injecting proxy -----------------------------------------------------------------


@dataclass
class Request:
    """One request as the proxy read it."""

    method: str
    target: str  # path and query
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def is_part_upload(self) -> bool:
        return self.method == "PUT" and "partNumber=" in self.target and "uploadId=" in self.target


def part_uploads(request: Request) -> bool:
    return request.is_part_upload


def any_request(request: Request) -> bool:
    return True


def completions(request: Request) -> bool:
    """``CompleteMultipartUpload``: ``POST /bucket/key?uploadId=...``."""
    return request.method == "POST" and "uploadId=" in request.target


@dataclass
class FaultRule:
    """``action`` for the next ``times`` requests ``matches`` accepts.

    Actions: ``"503"`` (``SlowDown``), ``"500"`` (``InternalError``), ``"403"``
    (``AccessDenied``), ``"cut"`` (close the connection halfway through the body, unanswered),
    ``"corrupt"`` (forward with one byte of the body changed), ``"lose"`` (forward, then close
    the connection instead of passing the answer on), ``"hold"`` (never answer until
    :meth:`FaultProxy.release`).
    """

    action: str
    times: int
    matches: Callable[[Request], bool] = part_uploads
    fired: int = 0


_ERRORS = {
    "503": (503, "Service Unavailable", "SlowDown", "Please reduce your request rate."),
    "500": (500, "Internal Server Error", "InternalError", "We encountered an internal error."),
    "403": (403, "Forbidden", "AccessDenied", "Access Denied"),
}


@dataclass
class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` (``host:port``), in a thread."""

    upstream: str
    rules: list[FaultRule] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # "METHOD target" of every request
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        started = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0)
            )
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            try:
                self._loop.run_forever()
            finally:
                server.close()
                self._loop.run_until_complete(server.wait_closed())
                pending = asyncio.all_tasks(self._loop)
                for task in pending:
                    task.cancel()
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self._loop.close()

        self._thread = threading.Thread(target=run, name="s3-fault-proxy", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def add(
        self, action: str, *, times: int, matches: Callable[[Request], bool] = part_uploads
    ) -> FaultRule:
        rule = FaultRule(action=action, times=times, matches=matches)
        with self._lock:
            self.rules.append(rule)
        return rule

    def release(self) -> None:
        """Let held requests through."""
        self._released.set()

    def count(self, predicate: Callable[[str], bool]) -> int:
        with self._lock:
            return sum(1 for line in self.seen if predicate(line))

    def _action_for(self, request: Request) -> str:
        with self._lock:
            self.seen.append(f"{request.method} {request.target}")
            for rule in self.rules:
                if rule.fired < rule.times and rule.matches(request):
                    rule.fired += 1
                    return rule.action
        return "forward"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await _read_head(reader)
                if head is None:
                    return
                method, target, headers = head
                length = int(_header(headers, "content-length") or "0")
                if (_header(headers, "expect") or "").lower() == "100-continue":
                    # botocore asks before sending a body; the proxy answers for the store
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await writer.drain()
                    headers = [(k, v) for k, v in headers if k.lower() != "expect"]
                # Rules match on the request line, so the action is decided (and counted)
                # once, before the body is read: concurrent requests cannot share a firing.
                action = self._action_for(Request(method, target, headers, b""))
                if length and action == "cut":
                    await reader.readexactly(length // 2)
                    writer.transport.abort()
                    return
                body = await reader.readexactly(length) if length else b""
                request = Request(method, target, headers, body)
                if action == "hold":
                    for _ in range(6000):  # bounded: 60 s
                        if self._released.is_set():
                            break
                        await asyncio.sleep(0.01)
                    action = "forward"
                if action in _ERRORS:
                    writer.write(_error_response(*_ERRORS[action]))
                    await writer.drain()
                    continue
                if action == "corrupt" and body:
                    damaged = bytearray(body)
                    damaged[len(damaged) // 2] ^= 0xFF
                    request.body = bytes(damaged)
                answer = await self._forward(request)
                if action == "lose":
                    writer.transport.abort()  # the store acted; its answer never arrives
                    return
                writer.write(answer)
                await writer.drain()
                return  # the upstream closed after its answer: so do we
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _forward(self, request: Request) -> bytes:
        host, port = self.upstream.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            lines = [f"{request.method} {request.target} HTTP/1.1"]
            for name, value in request.headers:
                if name.lower() != "connection":
                    lines.append(f"{name}: {value}")
            lines.append("Connection: close")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body)
            await writer.drain()
            answer = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        head, _, rest = answer.partition(b"\r\n\r\n")
        kept = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
        return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n" + rest


async def _read_head(
    reader: asyncio.StreamReader,
) -> tuple[str, str, list[tuple[str, str]]] | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = raw.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return method, target, headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _error_response(status: int, reason: str, code: str, message: str) -> bytes:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>fault-proxy</RequestId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body
