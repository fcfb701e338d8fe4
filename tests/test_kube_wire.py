"""ApiWire: the status patch's own HTTP/1.1 exchange with the API server.

It must send what kubernetes_asyncio's session would (the kubeconfig's TLS, its bearer
token, the default headers), resend only an exchange that failed on an idle connection
before any answer, and leave a proxied configuration to the session.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import trustme
from agent_sim import ApiSimulator
from kubernetes_asyncio import client

from agent.kube.client import ApiConnectionError, ApiWire, connect
from tests.servers import read_request, simulator_tls

TOKEN = "wire-token"
MERGE = "application/merge-patch+json"


def taskset(name: str) -> dict[str, object]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTaskSet",
        "metadata": {"name": name, "namespace": "argo"},
        "spec": {"tasks": {"n1": {"name": "t", "http": {"url": "http://127.0.0.1:1/"}}}},
    }


def status_path(name: str) -> str:
    return f"/apis/argoproj.io/v1alpha1/namespaces/argo/workflowtasksets/{name}/status"


PATCH = json.dumps({"status": {"nodes": {"n1": {"phase": "Succeeded"}}}}).encode()


def plain_api(port: int, **fields: object) -> client.ApiClient:
    configuration = client.Configuration(
        host=f"http://127.0.0.1:{port}",
        api_key={"BearerToken": TOKEN},
        api_key_prefix={"BearerToken": "Bearer"},
    )
    for name, value in fields.items():
        setattr(configuration, name, value)
    return client.ApiClient(configuration=configuration)


async def test_patches_over_tls_with_the_kubeconfig_ca_and_token(tmp_path: Path) -> None:
    async with ApiSimulator(tls=simulator_tls(trustme.CA())) as sim:
        sim.add_token(TOKEN)
        sim.create_object("workflowtasksets", taskset("tls"))
        api = await connect(kubeconfig=str(sim.kubeconfig(tmp_path / "kc", token=TOKEN)))
        wire = ApiWire(api)
        try:
            for _ in range(3):  # the same connection, kept alive
                reply = await wire.request(
                    "PATCH", status_path("tls"), PATCH, content_type=MERGE, timeout=10
                )
                assert reply.status == 200, reply
                assert json.loads(reply.body)["status"]["nodes"]["n1"]["phase"] == "Succeeded"
            missing = await wire.request(
                "PATCH", status_path("absent"), PATCH, content_type=MERGE, timeout=10
            )
            assert missing.status == 404
            assert b"not found" in missing.body
        finally:
            wire.close()
            await api.close()


async def test_an_unknown_token_is_refused_by_the_server(tmp_path: Path) -> None:
    async with ApiSimulator() as sim:
        sim.add_token(TOKEN)
        sim.create_object("workflowtasksets", taskset("t"))
        api = await connect(kubeconfig=str(sim.kubeconfig(tmp_path / "kc", token="other")))
        wire = ApiWire(api)
        try:
            reply = await wire.request(
                "PATCH", status_path("t"), PATCH, content_type=MERGE, timeout=10
            )
            assert reply.status == 401
        finally:
            wire.close()
            await api.close()


async def test_a_server_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    # the kubeconfig trusts a CA that did not sign the server's certificate
    tls = simulator_tls(trustme.CA(), signer=trustme.CA())
    async with ApiSimulator(tls=tls) as sim:
        sim.add_token(TOKEN)
        api = await connect(kubeconfig=str(sim.kubeconfig(tmp_path / "kc", token=TOKEN)))
        wire = ApiWire(api)
        try:
            with pytest.raises(ApiConnectionError, match="certificate verify failed"):
                await wire.request("PATCH", status_path("t"), PATCH, content_type=MERGE, timeout=10)
        finally:
            wire.close()
            await api.close()


def answer_once_then_close(conn: socket.socket) -> None:
    """Answer one request; close the connection when the next one arrives (a server that
    timed an idle connection out just as the client reused it)."""
    head = read_request(conn)
    assert b"authorization: bearer wire-token" in head.lower()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    read_request(conn)


async def test_an_idle_connection_the_server_closed_is_resent_once(raw_server) -> None:
    server = raw_server(answer_once_then_close)
    api = plain_api(server.port)
    wire = ApiWire(api)
    try:
        for _ in range(3):
            reply = await wire.request("PATCH", "/x", PATCH, content_type=MERGE, timeout=10)
            assert (reply.status, reply.body) == (200, b"{}")
        # the 2nd and 3rd requests each found their connection closed and went again
        assert server.accepted == 3
    finally:
        wire.close()
        await api.close()


async def test_a_new_connection_closed_before_an_answer_is_not_resent(raw_server) -> None:
    server = raw_server(lambda conn: read_request(conn) and None)
    api = plain_api(server.port)
    wire = ApiWire(api)
    try:
        with pytest.raises(ApiConnectionError, match="closed"):
            await wire.request("PATCH", "/x", PATCH, content_type=MERGE, timeout=10)
        assert server.accepted == 1
    finally:
        wire.close()
        await api.close()


async def test_a_proxied_configuration_goes_through_the_proxy(raw_server) -> None:
    """kubernetes_asyncio's session speaks to the proxy; ApiWire leaves such a
    configuration to it: the proxy sees the absolute-form request (RFC 9112 3.2.2)."""
    lines: list[bytes] = []

    def proxy(conn: socket.socket) -> None:
        head = read_request(conn)
        lines.append(head.split(b"\r\n", 1)[0])
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")

    proxy_server = raw_server(proxy)
    api = plain_api(1, proxy=f"http://127.0.0.1:{proxy_server.port}")
    wire = ApiWire(api)
    try:
        reply = await wire.request("PATCH", "/x", PATCH, content_type=MERGE, timeout=10)
        assert (reply.status, reply.body) == (200, b"{}")
        assert lines == [b"PATCH http://127.0.0.1:1/x HTTP/1.1"]
    finally:
        wire.close()
        await api.close()
