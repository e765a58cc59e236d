"""HTTP/1.1 for the HTTP uplinks: h11 over asyncio streams, one kept-alive connection, bounded.

The only agent-side module that imports an HTTP library. h11 (python-hyper, sans-IO, pure
Python) was picked for its cost on a Pi Zero 2 W: +0.5 MB RSS and ~8 ms to import, against
+5.5 MB (+10 MB after one request) for httpx and +14.5 MB for aiohttp (BENCHMARKS.md, "HTTP
client for the uplinks"). What it costs us is this module: a connection, TLS and a timeout.

- TLS is verified unless `tls_verify` is false (`tls_context`); `warnings` says so loudly.
- Every request is bounded by one deadline (connect, send, wait, read the body); on timeout
  the connection is dropped, never reused half-read.
- The connection is kept alive between requests, so the requests of one flush share one TCP
  and TLS handshake; one that idled longer than `idle_reuse_s`, or that the server closed, is
  replaced before use. An idempotent request (GET) that fails on a reused connection before
  any answer is retried once on a fresh one.
- Credentials (basic auth) live in one private attribute: never in a repr, a log line or an
  error message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import h11

log = logging.getLogger(__name__)

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_READ_CHUNK = 65536
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""A larger answer is an error: a read-back of 10,000 observations is ~1.5 MB."""


class HttpError(Exception):
    """The request got no HTTP answer (connect, TLS, timeout, protocol or size error).

    `sent`: the request may have reached the server (it was being written or was written),
    so whatever it asked for may have happened.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP answer: status, headers (lower-case names), the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        """The body as JSON; ValueError if it is not."""
        return json.loads(self.body)

    def retry_after_s(self) -> float | None:
        """Retry-After in seconds (the delay form; an HTTP date gives None)."""
        value = self.headers.get("retry-after", "").strip()
        try:
            return max(0.0, float(value)) if value else None
        except ValueError:
            return None


def tls_context(
    *, ca_file: str = "", cert_file: str = "", key_file: str = "", tls_verify: bool = True
) -> ssl.SSLContext:
    """A client context: the system's CAs (or `ca_file`), a client certificate when given."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    if not tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def warnings(name: str, url: str, *, tls_verify: bool) -> list[str]:
    """What makes this uplink insecure, for the log at start and `citygw status`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    found = []
    if parts.scheme == "https" and not tls_verify:
        found.append(
            f"uplink {name}: tls_verify is false: the server {host} is not authenticated "
            "(anyone on the path can read and change what is sent)"
        )
    local = host in _LOCAL_HOSTS or host.startswith("127.")
    if parts.scheme == "http" and not local:
        found.append(
            f"uplink {name}: url is plain http:// to {host}, not a local server: readings "
            "and credentials travel unencrypted (use https://)"
        )
    return found


def iso_ms(ts_ms: int) -> str:
    """UTC ISO 8601 with milliseconds, as the HTTP APIs take it: 2026-12-07T05:30:00.123Z."""
    seconds, millis = divmod(ts_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def basic_auth(username: str, password: str = "", password_file: str = "") -> str | None:
    """The Authorization header value for `username`, or None without a user name."""
    if not username:
        return None
    if password_file:
        password = Path(password_file).read_text(encoding="utf-8").strip()
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class _Connection:
    """One TCP (+TLS) connection with its h11 state."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
        self.idle_since = time.monotonic()

    def reusable(self, idle_reuse_s: float) -> bool:
        return (
            self.h11.our_state is h11.IDLE
            and not self.reader.at_eof()
            and not self.writer.is_closing()
            and time.monotonic() - self.idle_since < idle_reuse_s
        )

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.transport.abort()


class HttpClient:
    """Requests to one server (`base_url`'s scheme, host and port), one at a time."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
        authorization: str | None = None,
        user_agent: str = "citygw",
        idle_reuse_s: float = 30.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {base_url!r}")
        self.base_url = base_url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self._host_header = parts.netloc.rpartition("@")[2]
        self._ssl = ssl_context if parts.scheme == "https" else None
        if parts.scheme == "https" and self._ssl is None:
            self._ssl = tls_context()
        self._authorization = authorization
        self._user_agent = user_agent
        self.timeout_s = timeout_s
        self.idle_reuse_s = idle_reuse_s
        self._connection: _Connection | None = None
        self._lock = asyncio.Lock()
        self.connects = 0
        """TCP connections opened so far (keep-alive shows as fewer connects than requests)."""

    def __repr__(self) -> str:  # never the credentials
        return f"HttpClient({self.host}:{self.port}{self.base_path})"

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        headers: Sequence[tuple[str, str]] = (),
        timeout_s: float | None = None,
    ) -> Response:
        """`target` is a path under the base URL's path (with its query), e.g. "/Things?$top=1"."""
        async with self._lock:
            for attempt in (1, 2):
                reused = self._connection is not None
                try:
                    async with asyncio.timeout(timeout_s or self.timeout_s):
                        return await self._exchange(method, target, body, headers)
                except HttpError:
                    # A kept-alive connection the server had closed: a GET is safe to repeat.
                    if not (reused and method == "GET" and attempt == 1):
                        raise
                except TimeoutError:
                    self._drop()
                    raise HttpError(
                        f"{method} {self.host}: no answer within {timeout_s or self.timeout_s} s",
                        sent=True,
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        """Closes the kept-alive connection, if any."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await connection.writer.wait_closed()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abort()

    async def _connect(self) -> _Connection:
        if self._connection is not None and self._connection.reusable(self.idle_reuse_s):
            return self._connection
        self._drop()
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=_READ_CHUNK)
        except OSError as e:
            raise HttpError(f"cannot connect to {self.host}:{self.port}: {e}", sent=False) from e
        if self._ssl is not None:
            try:  # TLS on the open connection, so a failed handshake still closes the socket
                await writer.start_tls(self._ssl, server_hostname=self.host)
            except (OSError, ssl.SSLError) as e:
                writer.transport.abort()
                raise HttpError(f"TLS with {self.host}:{self.port}: {e}", sent=False) from e
        self.connects += 1
        self._connection = _Connection(reader, writer)
        return self._connection

    async def _exchange(
        self, method: str, target: str, body: bytes | None, headers: Sequence[tuple[str, str]]
    ) -> Response:
        connection = await self._connect()
        request_headers = [("Host", self._host_header), ("User-Agent", self._user_agent)]
        if self._authorization:
            request_headers.append(("Authorization", self._authorization))
        request_headers.extend(headers)
        if body is not None:
            request_headers.append(("Content-Length", str(len(body))))
        try:
            out = connection.h11.send(
                h11.Request(
                    method=method, target=self.base_path + target or "/", headers=request_headers
                )
            )
            data = [out or b""]
            if body:
                data.append(connection.h11.send(h11.Data(data=body)) or b"")
            data.append(connection.h11.send(h11.EndOfMessage()) or b"")
            connection.writer.write(b"".join(data))
            await connection.writer.drain()
            response = await self._read_response(connection, method)
        except HttpError:
            self._drop()
            raise
        except (OSError, h11.ProtocolError) as e:
            self._drop()
            raise HttpError(f"{method} {self.host}: {type(e).__name__}: {e}", sent=True) from e
        self._finish(connection)
        return response

    async def _read_response(self, connection: _Connection, method: str) -> Response:
        head: h11.Response | None = None
        chunks: list[bytes] = []
        size = 0
        while True:
            event = connection.h11.next_event()
            if event is h11.NEED_DATA:
                connection.h11.receive_data(await connection.reader.read(_READ_CHUNK))
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_RESPONSE_BYTES:
                    raise HttpError(f"{method} {self.host}: answer over {size} bytes", sent=True)
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                headers = {
                    name.decode("latin-1").lower(): value.decode("latin-1")
                    for name, value in head.headers
                }
                return Response(head.status_code, headers, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpError(f"{method} {self.host}: connection closed mid-answer", sent=True)

    def _finish(self, connection: _Connection) -> None:
        """Keep the connection for the next request if both sides are done with this one."""
        if connection.h11.our_state is h11.DONE and connection.h11.their_state is h11.DONE:
            connection.h11.start_next_cycle()
            connection.idle_since = time.monotonic()
        else:
            self._drop()


class HttpSection(Protocol):
    """What an HTTP uplink's config gives (the `[[uplinks]]` record, UplinkSection)."""

    @property
    def name(self) -> str:
        """The uplink's name (logs, status)."""
        ...

    @property
    def url(self) -> str:
        """http:// or https:// URL of the endpoint."""
        ...

    @property
    def username(self) -> str:
        """Basic-auth user name; empty: no credentials."""
        ...

    @property
    def password(self) -> str:
        """Basic-auth password (prefer password_file)."""
        ...

    @property
    def password_file(self) -> str:
        """File holding the password."""
        ...

    @property
    def ca_file(self) -> str:
        """CA bundle that verifies the server (empty: the system's CAs)."""
        ...

    @property
    def cert_file(self) -> str:
        """Client certificate for mutual TLS."""
        ...

    @property
    def key_file(self) -> str:
        """Private key of cert_file."""
        ...

    @property
    def tls_verify(self) -> bool:
        """Verify the server's certificate and host name."""
        ...

    @property
    def timeout_s(self) -> float:
        """Bound on each request."""
        ...


def http_client(section: HttpSection, *, user_agent: str) -> HttpClient:
    """The connection an HTTP uplink uses: TLS material, credentials and timeout from config."""
    for warning in warnings(section.name, section.url, tls_verify=section.tls_verify):
        log.warning("%s", warning)
    context = None
    if section.url.startswith("https:"):
        context = tls_context(
            ca_file=section.ca_file,
            cert_file=section.cert_file,
            key_file=section.key_file,
            tls_verify=section.tls_verify,
        )
    return HttpClient(
        section.url,
        timeout_s=section.timeout_s,
        ssl_context=context,
        authorization=basic_auth(section.username, section.password, section.password_file),
        user_agent=user_agent,
    )
