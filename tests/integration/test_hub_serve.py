"""`citygw hub serve` against a real database (SQLite and a throwaway PostgreSQL 15 cluster),
read with the standard SensorThings client (frost-sta-client), plain HTTP and Debian's headless
chromium. The database is filled by hub_serve_setup.py with the contract's tables, open and
closed sources, hostile register records, and readings only closed sources carry
(SECRET_VALUES): none may leave through any URL the service answers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hub_serve_setup import (
    HOSTILE,
    MINUTES,
    SECRET_VALUES,
    fill_postgresql,
    fill_sqlite,
    hub_serve,
    postgresql_cluster,
    readings,
)

pytestmark = pytest.mark.integration
OPEN_THINGS = {"gw-0001/pm-school", "gw-0001/ble-park", f"gw-0002/{HOSTILE}"}
CLOSED_NAMES = ("pm-school-private", "counter", "raw", "pm-lie", "gw-0009", "ble-parkx", "secret")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The base URL of `citygw hub serve` over a filled database of each kind."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("hub") / "hub.db"
        fill_sqlite(path)
        with hub_serve(f"sqlite:///{path}") as url:
            yield url
        return
    with postgresql_cluster() as dsn:
        fill_postgresql(dsn)
        with hub_serve(dsn) as url:
            yield url


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def ok(url: str) -> Any:
    status, body = get(url)
    assert status == 200, body
    return body


def pm25_stream(served: str) -> int:
    things = ok(f"{served}/v1.1/Things")["value"]
    school = next(t for t in things if t["name"] == "gw-0001/pm-school")
    streams = ok(school["Datastreams@iot.navigationLink"])["value"]
    return int(next(d for d in streams if d["name"].endswith(" pm2_5"))["@iot.id"])


# frost-sta-client 1.1.53 calls furl's deprecated `pathstr` on every request: theirs, not ours
@pytest.mark.filterwarnings("ignore:furl.pathstr is deprecated:DeprecationWarning")
def test_the_standard_client_lists_things_datastreams_and_every_observation(served: str) -> None:
    import frost_sta_client as fsc

    service = fsc.SensorThingsService(f"{served}/v1.1")
    things = list(service.things().query().list())
    assert {t.name for t in things} == OPEN_THINGS
    school = next(t for t in things if t.name == "gw-0001/pm-school")
    assert school.properties["owner"] == "burgermeetnet"
    streams = {d.name: d for d in school.get_datastreams().query().list()}
    assert set(streams) == {"gw-0001/pm-school pm2_5", "gw-0001/pm-school pm10"}
    pm25 = streams["gw-0001/pm-school pm2_5"]
    assert pm25.unit_of_measurement.symbol == "ug/m3"
    # the client follows @iot.nextLink: 150 readings in pages of 100
    values = [o.result for o in pm25.get_observations().query().list()]
    assert values == [float(m) for m in range(MINUTES)]
    latest = list(
        pm25.get_observations()
        .query()
        .filter("phenomenonTime ge 2026-12-01T00:00:00Z")
        .orderby("phenomenonTime", "desc")
        .top(25)
        .list()
    )
    assert [o.result for o in latest] == [float(m) for m in range(MINUTES - 1, 59, -1)]
    assert all(str(o.phenomenon_time).startswith("2026-12-01T") for o in latest)
    every = [o.result for o in service.observations().query().top(1000).list()]
    assert sorted(every) == sorted(
        [float(m) for m in range(MINUTES)] + [1000.0 + m for m in range(MINUTES)] + [7.5, 42.0]
    )
    locations = list(school.get_locations().query().list())
    assert locations[0].location["coordinates"] == [5.1214, 52.0907]


def test_pages_carry_count_self_and_next_links_until_the_last(served: str) -> None:
    stream = pm25_stream(served)
    url = f"{served}/v1.1/Datastreams({stream})/Observations?$top=40&$count=true"
    seen: list[float] = []
    pages = 0
    while url:
        body = ok(url)
        pages += 1
        assert body["@iot.count"] == MINUTES
        for o in body["value"]:
            assert ok(o["@iot.selfLink"])["result"] == o["result"]
            assert ok(o["Datastream@iot.navigationLink"])["@iot.id"] == stream
        seen += [o["result"] for o in body["value"]]
        url = body.get("@iot.nextLink", "")
    assert pages == 4 and seen == [float(m) for m in range(MINUTES)]
    empty = ok(f"{served}/v1.1/Datastreams({stream})/Observations?$skip=1000")
    assert empty == {"value": []}
    counted = ok(f"{served}/v1.1/Datastreams({stream})/Observations?$top=0&$count=true")
    assert counted == {"@iot.count": MINUTES, "value": []}
    things = ok(f"{served}/v1.1/Things?$top=2&$count=true")
    assert things["@iot.count"] == 3 and len(things["value"]) == 2
    assert len(ok(things["@iot.nextLink"])["value"]) == 1


@pytest.mark.parametrize(
    ("expression", "minutes"),
    [
        ("phenomenonTime eq 2026-12-01T00:00:00Z", [60]),
        ("phenomenonTime gt 2026-12-01T00:00:00Z and phenomenonTime le 2026-12-01T00:03:00Z",
         [61, 62, 63]),
        ("phenomenonTime lt 2026-11-30T23:02:00Z", [0, 1]),
        ("phenomenonTime ge 2026-12-01T02:20:00+01:00 and phenomenonTime lt 2026-12-01T01:23:00Z",
         [140, 141, 142]),
        ("resultTime ge 2026-12-01T01:29:00.000Z", [149]),
    ],
)  # fmt: skip
def test_filters_on_phenomenon_time(served: str, expression: str, minutes: list[int]) -> None:
    stream = pm25_stream(served)
    query = urllib.parse.urlencode({"$filter": expression})
    body = ok(f"{served}/v1.1/Datastreams({stream})/Observations?{query}")
    assert [o["result"] for o in body["value"]] == [float(m) for m in minutes]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("$top=1001", "at most 1000"),
        ("$top=-1", "whole number"),
        ("$skip=x", "whole number"),
        ("$expand=Datastream", "not supported"),
        ("$count=maybe", "true or false"),
        ("$orderby=result", "phenomenonTime"),
        ("$filter=result gt 3", "phenomenonTime ge"),
        ("$filter=phenomenonTime ge 2026-12-01T00:00:00", "with a zone"),
        ("$filter=phenomenonTime ne 2026-12-01T00:00:00Z", "operator"),
        ("$filter=phenomenonTime ge 2026-12-01T00:00:00Z or phenomenonTime lt 2027-01-01T00:00:00Z",
         "phenomenonTime ge"),
        ("$top=1&$top=2", "twice"),
    ],
)  # fmt: skip
def test_bad_query_options_are_400_with_the_reason(served: str, query: str, says: str) -> None:
    stream = pm25_stream(served)
    parts = urllib.parse.quote(query, safe="$=&")
    status, body = get(f"{served}/v1.1/Datastreams({stream})/Observations?{parts}")
    assert status == 400 and says in body["message"], body


def test_nothing_but_open_data_is_reachable(served: str) -> None:
    """Every URL the API hands out, followed; and every non-open reading's key tried under
    every open Datastream: no closed source's name or value ever comes back."""
    seen: set[str] = set()
    todo = [f"{served}/v1.1", f"{served}/v1.1/Observations?$top=1000"]
    bodies: list[str] = []
    while todo and len(seen) < 400:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        body = ok(url)
        bodies.append(json.dumps(body))
        todo += [link for link in _links(body) if link.startswith(served)]
    assert len(seen) > 30
    streams = [d["@iot.id"] for d in ok(f"{served}/v1.1/Datastreams")["value"]]
    closed = [r for r in readings() if r.value in SECRET_VALUES]
    for stream in streams:
        for r in closed:
            status, body = get(f"{served}/v1.1/Observations('{stream}-{r.epoch}-{r.seq}')")
            assert status == 404, body
    text = "\n".join(bodies)
    for name in CLOSED_NAMES:
        assert name not in text
    served_values = {float(v) for v in _values(bodies)}
    assert served_values.isdisjoint(SECRET_VALUES)


def _links(body: Any) -> list[str]:
    if isinstance(body, list):
        return [link for item in body for link in _links(item)]
    if not isinstance(body, dict):
        return []
    found = [
        v for k, v in body.items() if isinstance(v, str) and (k.endswith("Link") or k == "url")
    ]
    return found + [link for v in body.values() for link in _links(v)]


def _values(bodies: list[str]) -> list[float]:
    items = [item for text in bodies for item in json.loads(text).get("value", [])]
    return [
        i["result"] for i in items if isinstance(i, dict) and isinstance(i.get("result"), float)
    ]


def test_only_get_and_head_are_answered(served: str) -> None:
    request = urllib.request.Request(f"{served}/v1.1/Things", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    caught.value.close()
    assert caught.value.code == 405
    status, body = get(f"{served}/v1.1/Things(1)")
    assert status == 404 and "no Things" in body["message"]


# --- the page, in a real browser ------------------------------------------------------------


def chromium_dom(url: str, tmp_path: Path) -> str:
    """The DOM after chromium loaded `url` (and would have run any script)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed (make deps)")
    result = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}",
         "--virtual-time-budget=2000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90, check=True,
    )  # fmt: skip
    return result.stdout


class Dom(HTMLParser):
    """Elements, attributes and the text of each sensor's article."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.articles: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "article":
            self.articles.append("")
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.articles[-1] += data + " "


def article(dom: Dom, heading: str) -> str:
    return next(a for a in dom.articles if a.startswith(heading + " "))


def test_the_page_in_chromium_shows_every_sensor_and_the_latest_open_values(
    served: str, tmp_path: Path
) -> None:
    dom = Dom()
    dom.feed(chromium_dom(served + "/", tmp_path))
    assert len(dom.articles) == 8  # every register row, open or not
    school = article(dom, "gw-0001 / pm-school")
    assert "Air quality near the school" in school and "burgermeetnet" in school
    assert "149 ug/m3" in school and "1149 ug/m3" in school
    assert "2026-12-01 01:29:00" in school
    assert "7.5 C" in article(dom, "gw-0001 / ble-park")
    counter = article(dom, "gw-0001 / counter")
    assert "Counting passers-by" in counter and "public task (GDPR 6.1.e)" in counter
    assert "Personal data yes" in " ".join(counter.split())
    assert "Latest values" not in counter and "Latest values" not in article(dom, "gw-0002 / raw")
    assert "no register record" in article(dom, "gw-0002 / raw")
    page_text = " ".join(dom.articles)
    for secret in SECRET_VALUES:
        assert f" {secret:g} " not in page_text.replace("(", " ")


def test_a_hostile_register_record_stays_text_in_the_browser(served: str, tmp_path: Path) -> None:
    dom = Dom()
    dom.feed(chromium_dom(served + "/", tmp_path))
    assert {tag for tag, _ in dom.tags} <= {
        "html", "head", "meta", "title", "style", "body", "header", "h1", "p", "main", "ul",
        "li", "article", "h2", "dl", "dt", "dd", "em", "a", "table", "caption", "thead", "tr",
        "th", "tbody", "td", "time", "footer",
    }  # fmt: skip
    for tag, attrs in dom.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        href = attrs.get("href") or ""
        assert href == "" or href.startswith(("https://", "/v1.1/")), href
    hostile = article(dom, f"gw-0002 / {HOSTILE}")
    assert "<img src=x onerror=alert(3)>" in hostile  # the purpose, shown as text
    assert "42 </td><script>alert(2)</script>" in hostile  # its value and hostile unit
    assert "none published" in hostile  # the javascript: privacy statement is no link
    assert article(dom, "gw-0002 / <script>alert(6)</script>")


def test_a_database_restart_costs_a_503_not_the_service(postgres: Any) -> None:
    fill_postgresql(postgres.dsn)
    with hub_serve(postgres.dsn) as url:
        readings_url = f"{url}/v1.1/Datastreams({pm25_stream(url)})/Observations"
        assert len(ok(readings_url)["value"]) == 100
        postgres.stop()
        status, body = get(readings_url)
        assert status == 503 and "not answering" in body["message"]
        postgres.start()
        assert len(ok(readings_url)["value"]) == 100


@pytest.mark.parametrize(
    "path",
    [
        "/v1.1/Things(99999999999999999999)", "/v1.1/Things('1')", "/v1.1/Things(-1)",
        "/v1.1/Observations(1)", "/v1.1/Observations('1-2')", "/v1.1/Observations('x''y')",
        "/v1.1/Observations('99999999999999-1-1')/Datastream", "/v1.1/Things(1)/Observations",
        "/v1.1/Things/Datastreams", "/v1.1/Nope", "/v1.1/Things(1", "/v1.1/%00", "/v1.1//",
        "/v1.1/Datastreams(1)/Observations/Datastream", "/v1.1/Things?$top=%FF",
        "/v1.1/Things?$filter=phenomenonTime%20ge%202026-12-07T00:00:00Z",
        "/v1.1/Observations?$filter=phenomenonTime%20ge%209999-12-31T23:59:59-23:59",
        "/v1.1/Observations?$filter=phenomenonTime%20ge%200001-01-01T00:00:00%2B14:00",
        "/v1.1/Observations?" + "&".join(f"a{i}=1" for i in range(40)),
        "/v1.1/Observations?$orderby=", "/v1.1/Observations?$top=", "/v1.1/Observations?$",
        "/x", "/index.html", "/v1.10",
    ],
)  # fmt: skip
def test_odd_urls_get_a_clear_4xx_never_a_500(served: str, path: str) -> None:
    status, body = get(served + path)
    assert status in (200, 400, 404), (status, body)
    assert body.get("message") or "value" in body
