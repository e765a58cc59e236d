"""The HTTP uplinks' client (h11 over asyncio streams) against real local servers.

Keep-alive, a server that closes idle connections, timeouts, refused connections, TLS
verified by default (a throwaway CA made with openssl, secure_mqtt.make_pki), basic auth from a
password file that never shows in reprs, errors or logs, and a bound on the answer's size.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from secure_mqtt import make_pki

from gateway.config import UplinkSection
from gateway.uplinks import http_client as http
from gateway.uplinks.http_client import HttpClient, HttpError

pytestmark = pytest.mark.integration

PASSWORD = "pw-of-the-citizens-0815"


@dataclass
class Site:
    port: int = 0
    connections: int = 0
    requests: list[dict[str, str]] = field(default_factory=list)
    body: bytes = b'{"ok":true}'


def _serve(site: Site, tls: ssl.SSLContext | None = None) -> Iterator[Site]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            site.connections += 1

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            if length:
                self.rfile.read(length)
            site.requests.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Length", str(len(site.body)))
            self.end_headers()
            self.wfile.write(site.body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    site.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def site() -> Iterator[Site]:
    yield from _serve(Site())


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    make_pki(tmp_path)
    return tmp_path


@pytest.fixture
def tls_site(pki: Path) -> Iterator[Site]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    yield from _serve(Site(), context)


SIGN = ("-CAcreateserial", "-days", "2", "-out", "client.crt")


def make_client_cert(pki: Path) -> tuple[Path, Path]:
    """A client certificate signed by the test CA (as a city would issue to a gateway)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for args in (
        ["req", *ec, "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=gw-0001"],
        ["x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", *SIGN],
    ):
        subprocess.run(["openssl", *args], cwd=pki, check=True, capture_output=True)
    return pki / "client.crt", pki / "client.key"


@pytest.fixture
def mtls_site(pki: Path) -> Iterator[Site]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.crt"))
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    yield from _serve(Site(), context)


async def test_requests_share_one_kept_alive_connection(site: Site) -> None:
    client = HttpClient(f"http://127.0.0.1:{site.port}/api", timeout_s=5)
    try:
        for _ in range(3):
            response = await client.request("POST", "/x", body=b"{}")
            assert (response.status, response.json()) == (200, {"ok": True})
    finally:
        await client.close()
    assert (site.connections, client.connects, len(site.requests)) == (1, 1, 3)


async def test_a_connection_the_server_closed_is_replaced_before_use() -> None:
    """A server that answers with a length and then hangs up (as after its keep-alive)."""
    connections = 0

    async def answer_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_and_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HttpClient(f"http://127.0.0.1:{port}", timeout_s=5)
    try:
        first = await client.request("GET", "/")
        await asyncio.sleep(0.2)  # the FIN arrives while the connection idles
        second = await client.request("POST", "/", body=b"x")
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
    assert (first.body, second.body, connections) == (b"ok", b"ok", 2)


async def test_a_server_that_never_answers_times_out() -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HttpClient(f"http://127.0.0.1:{port}", timeout_s=0.5)
    try:
        with pytest.raises(HttpError) as raised:
            await asyncio.wait_for(client.request("POST", "/", body=b"{}"), timeout=5)
    finally:
        await client.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert raised.value.sent  # the server may have acted on it
    assert "no answer within 0.5 s" in str(raised.value)


async def test_a_refused_connection_is_an_error_that_sent_nothing() -> None:
    client = HttpClient("http://127.0.0.1:9/", timeout_s=2)
    with pytest.raises(HttpError) as raised:
        await client.request("GET", "/")
    assert not raised.value.sent


async def test_tls_is_verified_by_default(tls_site: Site) -> None:
    client = HttpClient(f"https://127.0.0.1:{tls_site.port}", timeout_s=5)
    with pytest.raises(HttpError, match="CERTIFICATE_VERIFY_FAILED"):
        await client.request("GET", "/")
    assert tls_site.requests == []


async def test_tls_with_the_citys_ca_file_and_with_verification_off(
    tls_site: Site, pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"https://127.0.0.1:{tls_site.port}"
    verified = HttpClient(
        url, timeout_s=5, ssl_context=http.tls_context(ca_file=str(pki / "ca.crt"))
    )
    unverified = HttpClient(url, timeout_s=5, ssl_context=http.tls_context(tls_verify=False))
    try:
        assert (await verified.request("GET", "/")).status == 200
        assert (await unverified.request("GET", "/")).status == 200
    finally:
        await verified.close()
        await unverified.close()
    assert http.warnings("sta", url, tls_verify=True) == []
    [warning] = http.warnings("sta", url, tls_verify=False)
    assert "tls_verify is false" in warning
    assert "plain http://" in http.warnings("sta", "http://sta.example/v1.1", tls_verify=True)[0]
    assert http.warnings("sta", "http://127.0.0.1:8080/v1.1", tls_verify=True) == []


async def test_basic_auth_from_a_password_file_never_shows(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "burgers.pass"
    secret.write_text(PASSWORD + "\n")
    caplog.set_level(logging.DEBUG)
    client = http.http_client(
        UplinkSection(
            name="burgers",
            owners=["burgermeetnet"],
            url=f"http://127.0.0.1:{site.port}/v1",
            format="sensorthings",
            username="gw-0001",
            password_file=str(secret),
            timeout_s=0.5,
        ),
        user_agent="citygw/test",
    )
    try:
        await client.request("GET", "/Things")
        site.body = b"x" * (http.MAX_RESPONSE_BYTES + 1)
        with pytest.raises(HttpError) as too_big:
            await client.request("GET", "/Things")
    finally:
        await client.close()
    import base64

    token = base64.b64encode(f"gw-0001:{PASSWORD}".encode()).decode()
    assert site.requests[0]["authorization"] == f"Basic {token}"
    assert site.requests[0]["user-agent"] == "citygw/test"
    for shown in (repr(client), str(too_big.value), caplog.text):
        assert PASSWORD not in shown and token not in shown


async def test_a_client_certificate_for_a_server_that_requires_one(
    mtls_site: Site, pki: Path
) -> None:
    cert, key = make_client_cert(pki)
    url = f"https://127.0.0.1:{mtls_site.port}"
    ca = str(pki / "ca.crt")
    with_cert = HttpClient(
        url,
        timeout_s=5,
        ssl_context=http.tls_context(ca_file=ca, cert_file=str(cert), key_file=str(key)),
    )
    without = HttpClient(url, timeout_s=5, ssl_context=http.tls_context(ca_file=ca))
    try:
        assert (await with_cert.request("GET", "/")).status == 200
        with pytest.raises(HttpError):  # TLS 1.3: the refusal shows when the answer is read
            await without.request("GET", "/")
    finally:
        await with_cert.close()
        await without.close()
    assert len(mtls_site.requests) == 1
