"""Start, stop and read a real SensorThings API server (django-ogc-sensorthings 1.2.0, SQLite).

The Django project is gateway/devtools/sta_server (`citygw demo` runs it too).

`StaServer(workdir, template)` runs `django runserver` on a free loopback port as a subprocess;
`template` is a migrated SQLite file (`migrated_template`), copied so each test starts empty
and pays for `migrate` once. Reads go over the standard STA HTTP API with plain urllib (an
independent client: not the code under test).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from skips import skip_or_fail

HERE = Path(__file__).resolve().parent
API = "/sensorthings/v1.1"


def _environment(db: Path, service_url: str = "http://127.0.0.1") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="gateway.devtools.sta_server.settings",
        PYTHONPATH=str(HERE.parent),
        STA_DB=str(db),
        STA_SERVICE_URL=service_url,
    )
    return env


def migrated_template(directory: Path) -> Path:
    """An empty, migrated STA database in `directory` (made once, then copied per server).
    Skips the test (fails it in CI) where the test extra's server is not installed."""
    try:
        import sensorthings  # noqa: F401
    except ImportError:
        skip_or_fail("django-ogc-sensorthings is not installed (the test extra)")
    db = directory / "template.sqlite3"
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v0"],
        env=_environment(db),
        check=True,
        timeout=120,
        capture_output=True,
    )
    return db


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StaServer:
    """One server process over its own copy of the database."""

    def __init__(self, workdir: Path, template: Path) -> None:
        self.workdir = workdir
        self.db = workdir / "sta.sqlite3"
        shutil.copyfile(template, self.db)
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = self.root + API
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "sta-server.log"

    def start(self, *, timeout_s: float = 30.0) -> None:
        """Start (again, on the same port and database) and wait until the API answers."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "django",
                    "runserver",
                    "--noreload",
                    f"127.0.0.1:{self.port}",
                ],
                env=_environment(self.db, self.root + "/sensorthings"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"STA server exited: {self.log.read_text()[-2000:]}")
            try:
                self.get("/")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"STA server did not answer in {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, JSON answer or None) of a request to the API."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, None

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        status, answer = self.request("GET", f"{path}?{query}" if query else path)
        if status != 200:
            raise AssertionError(f"GET {path}: HTTP {status} {answer}")
        return answer

    def all(self, path: str, **params: str) -> list[dict[str, Any]]:
        """Every entity of a collection, page by page ($top/$skip), each once: on a nested path
        (Datastreams(id)/Observations) this server's pages after the first start one entity
        early (a 1-based row_number filtered with >= $skip), so one entity would show twice."""
        found: dict[Any, dict[str, Any]] = {}
        skip = 0
        while True:
            paging = {"$top": "100", "$skip": str(skip), "$orderby": "id"}
            page = self.get(path, **params, **paging)["value"]
            found.update((entity["@iot.id"], entity) for entity in page)
            skip += len(page)
            if len(page) < 100:
                return list(found.values())

    def observations(self, datastream_id: str) -> list[dict[str, Any]]:
        """Every Observation of a Datastream (id, phenomenonTime, result, parameters, ...),
        each once, through the dataArray result format (10,000 a page; no $select, which makes
        this server run a query per row)."""
        found: dict[str, dict[str, Any]] = {}
        skip = 0
        while True:
            answer = self.get(
                f"/Datastreams('{datastream_id}')/Observations",
                **{
                    "$resultFormat": "dataArray",
                    "$orderby": "id",
                    "$top": "10000",
                    "$skip": str(skip),
                },
            )
            count = 0
            for group in answer["value"]:
                for row in group["dataArray"]:
                    entity = dict(zip(group["components"], row, strict=True))
                    found[entity["id"]] = entity
                    count += 1
            skip += count
            if count < 10000:
                return list(found.values())
