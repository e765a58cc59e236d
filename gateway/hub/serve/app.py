"""The ASGI application `citygw hub serve` runs under uvicorn: `/` the page, `/v1.1/...` the API.

GET and HEAD only. Database work runs on a small pool of worker threads (each with its own
read-only connection), every wait on it bounded; the register is re-read at most every
`catalog_ttl_s` and the page rendered at most every `page_ttl_s`, so visitors, however many,
cost the database a bounded amount of work. A database that is down gives 503, bad query
options 400 with the reason, and nothing else about the server leaks into an answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from gateway.hub.serve import page, sta
from gateway.hub.serve.catalog import Catalog
from gateway.hub.serve.db import DatabaseUnavailable
from gateway.hub.serve.store import Store

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
T = TypeVar("T")
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")
COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class Response:
    """Status, content type and body of one answer."""

    def __init__(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.status, self.body, self.content_type = status, body, content_type
        self.headers = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]


def json_response(status: int, body: object) -> Response:
    """JSON (never NaN: not JSON), open to any web origin: it is open data."""
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(
        status, text.encode(), "application/json; charset=utf-8", access_control_allow_origin="*"
    )


def error(status: int, message: str) -> Response:
    """An STA-style error body."""
    return json_response(status, {"code": status, "type": "error", "message": message})


class HubWeb:
    """The application: `await app(scope, receive, send)` per request (ASGI 3)."""

    def __init__(
        self,
        store: Store,
        *,
        workers: int = 4,
        catalog_ttl_s: float = 10.0,
        page_ttl_s: float = 15.0,
        request_timeout_s: float = 30.0,
    ) -> None:
        self.store = store
        self.request_timeout_s = request_timeout_s
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="hub-serve")
        self._lock = threading.Lock()
        self._catalog: tuple[float, Catalog] | None = None
        self._page: tuple[float, bytes] | None = None
        self.catalog_ttl_s, self.page_ttl_s = catalog_ttl_s, page_ttl_s

    def close(self) -> None:
        """Stops the worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answers one HTTP request (other scope types are ignored: lifespan is off)."""
        if scope["type"] != "http":
            return
        response = await self.respond(scope)
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
            *COMMON_HEADERS,
            *response.headers,
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})

    async def respond(self, scope: Scope) -> Response:
        """The answer to one request; never raises."""
        if scope["method"] not in ("GET", "HEAD"):
            response = error(405, "this service is read-only: GET and HEAD only")
            response.headers.append((b"allow", b"GET, HEAD"))
            return response
        path: str = scope["path"]
        try:
            if path == "/":
                return await self._off_loop(self._page_response)
            if path == sta.PREFIX or path.startswith(sta.PREFIX + "/"):
                query = scope["query_string"].decode("latin-1")
                request = sta.Request(_base_url(scope), path[len(sta.PREFIX) :], query)
                return await self._off_loop(lambda: self._api_response(request))
            return error(404, "not found: the page is at / and the API at /v1.1/")
        except sta.ApiError as exc:
            return error(exc.status, exc.message)
        except (DatabaseUnavailable, TimeoutError) as exc:
            log.warning("hub serve: database unavailable: %s", exc)
            return error(503, "the database is not answering; try again shortly")
        except Exception:
            log.exception("hub serve: request for %r failed", path[:200])
            return error(500, "internal error")

    async def _off_loop(self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.request_timeout_s):
            return await loop.run_in_executor(self._pool, work)

    def catalog(self) -> Catalog:
        """The register, re-read at most every catalog_ttl_s (worker thread)."""
        with self._lock:
            cached = self._catalog
        if cached is not None and time.monotonic() - cached[0] < self.catalog_ttl_s:
            return cached[1]
        fresh = self.store.catalog()
        with self._lock:
            self._catalog = (time.monotonic(), fresh)
        return fresh

    def _page_response(self) -> Response:
        with self._lock:
            cached = self._page
        if cached is None or time.monotonic() - cached[0] >= self.page_ttl_s:
            catalog = self.catalog()
            latest = {s.id: self.store.latest(catalog, s) for s in catalog.streams}
            html = page.render(catalog, latest, datetime.now(UTC)).encode()
            cached = (time.monotonic(), html)
            with self._lock:
                self._page = cached
        return Response(
            200,
            cached[1],
            "text/html; charset=utf-8",
            content_security_policy=page.CSP,
            cache_control=f"public, max-age={int(self.page_ttl_s)}",
        )

    def _api_response(self, request: sta.Request) -> Response:
        return json_response(200, sta.answer(self.store, self.catalog(), request))


def _base_url(scope: Scope) -> str:
    """The API root as the client reached it (a Host that is not a host name is not echoed)."""
    host = ""
    for name, value in scope.get("headers", []):
        if name == b"host":
            host = value.decode("latin-1")
    if not _HOST.fullmatch(host):
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{sta.PREFIX}"


def serve(store: Store, *, host: str, port: int, log_level: str = "info") -> None:
    """Runs the application under uvicorn until SIGINT/SIGTERM."""
    import uvicorn  # the hub extra

    app = HubWeb(store)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        limit_concurrency=128,  # past this, 503 at once instead of a growing queue
        timeout_keep_alive=5,
        server_header=False,
        proxy_headers=False,
        log_level=log_level,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        app.close()
