"""What an HTTP client costs the agent: import time and RSS of the candidates, one GET each.

    .venv/bin/python bench/http_clients.py [--python OTHER_PYTHON] [--runs 5]

Each candidate runs in a fresh interpreter (`-X importtime` for the import's cumulative time)
after `import asyncio, ssl` (the agent has both already), then makes one GET to a local HTTP/1.1
server. VmRSS (/proc/self/status) before the import, after it, and after the request; medians
of `--runs`. Candidates the interpreter lacks are reported as such: `--python` names another
venv's interpreter that has them (httpx and aiohttp are not dependencies of citygw). The last
rows are citygw's own modules: `gateway.uplinks.http_client` and the two formats on top of it.
"""

from __future__ import annotations

import argparse
import http.server
import json
import statistics
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import asyncio, ssl, json, sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
PORT = int(sys.argv[1])
{pre}
before = rss()
{imports}
imported = rss()
{request}
print(json.dumps([before, imported, rss()]))
"""

CANDIDATES: dict[str, tuple[str, str, str]] = {
    # name: (top-level module for -X importtime, import statement, one GET)
    "h11 (over asyncio streams)": (
        "h11",
        "import h11",
        """
async def go():
    r, w = await asyncio.open_connection('127.0.0.1', PORT)
    c = h11.Connection(h11.CLIENT)
    w.write(c.send(h11.Request(method='GET', target='/', headers=[('Host', 'x')])))
    w.write(c.send(h11.EndOfMessage()))
    while type(event := c.next_event()) is not h11.EndOfMessage:
        if event is h11.NEED_DATA:
            c.receive_data(await r.read(65536))
    w.close()
asyncio.run(go())
""",
    ),
    "httpx": (
        "httpx",
        "import httpx",
        """
async def go():
    async with httpx.AsyncClient() as client:
        await client.get(f'http://127.0.0.1:{PORT}/')
asyncio.run(go())
""",
    ),
    "aiohttp": (
        "aiohttp",
        "import aiohttp",
        """
async def go():
    async with aiohttp.ClientSession() as session:
        async with session.get(f'http://127.0.0.1:{PORT}/') as response:
            await response.read()
asyncio.run(go())
""",
    ),
    "citygw: gateway.uplinks.http_client": (
        "gateway.uplinks.http_client",
        "from gateway.uplinks.http_client import HttpClient",
        """
async def go():
    client = HttpClient(f'http://127.0.0.1:{PORT}/', timeout_s=5)
    await client.request('GET', '/')
    await client.close()
asyncio.run(go())
""",
    ),
    "citygw: both formats (sensorthings + sensor_community)": (
        "gateway.uplinks.sensorthings",
        "import gateway.uplinks.sensorthings, gateway.uplinks.sensor_community",
        "",
    ),
    "citygw: both formats, in an agent that has loaded its MQTT uplink": (
        "gateway.uplinks.sensorthings",
        "import gateway.uplinks.sensorthings, gateway.uplinks.sensor_community",
        "",
    ),
}
PRE = {
    "citygw: both formats, in an agent that has loaded its MQTT uplink": (
        "import gateway.config, gateway.agent.root, gateway.uplinks.mqtt"
    ),
}


class _Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def _import_ms(python: str, module: str, pre: str) -> float:
    """Cumulative -X importtime of `module` (after asyncio, ssl and `pre`), in ms."""
    done = subprocess.run(
        [python, "-X", "importtime", "-c", f"import asyncio, ssl\n{pre}\nimport {module}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    for line in done.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1000
    return float("nan")


def measure(python: str, name: str, port: int, runs: int) -> str:
    module, imports, request = CANDIDATES[name]
    probe = PROBE.format(pre=PRE.get(name, ""), imports=imports, request=request)
    samples = []
    for _ in range(runs):
        done = subprocess.run(
            [python, "-c", probe, str(port)], capture_output=True, text=True, cwd=REPO
        )
        if done.returncode != 0:
            return f"| {name} | not installed in {python} | | | |"
        samples.append(json.loads(done.stdout))
    ms = statistics.median(_import_ms(python, module, PRE.get(name, "")) for _ in range(runs))
    base = statistics.median(s[0] for s in samples)
    after_import = statistics.median(s[1] - s[0] for s in samples)
    after_get = statistics.median(s[2] - s[0] for s in samples)
    return (
        f"| {name} | {ms:.1f} ms | +{after_import / 1024:.2f} MB | +{after_get / 1024:.2f} MB "
        f"| {base / 1024:.1f} MB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter for the candidates")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    print(
        "| client | import (-X importtime, cumulative) | RSS after import | RSS after one GET "
        "| RSS before (python + asyncio + ssl [+ the agent's modules]) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name in CANDIDATES:
        python = sys.executable if name.startswith("citygw") else args.python
        print(measure(python, name, port, args.runs), flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
