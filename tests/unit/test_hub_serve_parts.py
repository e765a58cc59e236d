"""The pure parts of `citygw hub serve`: query options, register records as the catalog reads
them (whatever a gateway published), and the page's escaping."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from gateway.hub.serve import page
from gateway.hub.serve.catalog import Catalog, sensor_from_row
from gateway.hub.serve.options import MAX_TOP, OptionError, parse


def test_options_parse_into_bounded_values() -> None:
    options = parse(
        "$top=5&$skip=10&$count=true&$orderby=phenomenonTime%20desc"
        "&$filter=phenomenonTime%20ge%202026-12-07T06:00:00%2B01:00%20and%20resultTime%20lt"
        "%202026-12-08T00:00:00Z&custom=ignored",
        time_options=True,
    )
    assert (options.top, options.skip, options.count, options.descending) == (5, 10, True, True)
    assert [(b.sql_op, b.when) for b in options.bounds] == [
        (">=", datetime(2026, 12, 7, 5, 0, tzinfo=UTC)),
        ("<", datetime(2026, 12, 8, 0, 0, tzinfo=UTC)),
    ]
    assert parse("", time_options=True).top == 100


@pytest.mark.parametrize(
    "query",
    [
        f"$top={MAX_TOP + 1}",
        "$skip=99999999999",
        "$select=result",
        "$filter=phenomenonTime ge 2026-12-07T06:00:00",
        "$filter=" + " and ".join(["phenomenonTime ge 2026-12-07T06:00:00Z"] * 9),
        "$orderby=phenomenonTime sideways",
        "&".join(f"x{i}=1" for i in range(30)),
    ],
)
def test_options_outside_what_is_served_are_refused(query: str) -> None:
    with pytest.raises(OptionError):
        parse(query, time_options=True)


def test_time_options_are_refused_where_there_is_no_time() -> None:
    with pytest.raises(OptionError, match="Observations only"):
        parse("$filter=phenomenonTime ge 2026-12-07T06:00:00Z", time_options=False)


@pytest.mark.parametrize(
    ("record", "opens"),
    [
        (None, False),
        ("not json", False),
        ("[1, 2]", False),
        ({"register": "yes", "quantities": "pm2_5"}, False),
        ({"register": {"open_data": "true", "location": [1e308, 0]}, "quantities": [1]}, False),
        ({"register": {"open_data": 1, "personal_data": "no", "location": [91, 0]}}, False),
        ({"register": {"open_data": True}, "quantities": [{"quantity": ["x"], "unit": 5}]}, True),
    ],
)
def test_any_register_record_gives_a_sensor_and_only_literal_true_opens_it(
    record: object, opens: bool
) -> None:
    text = record if record is None or isinstance(record, str) else json.dumps(record)
    sensor = sensor_from_row("gw", "src", None, text)
    assert sensor.gateway == "gw" and sensor.location is None and sensor.quantities == ()
    assert sensor.personal_data is None and sensor.open_data is opens


def test_a_privacy_statement_becomes_a_link_only_when_it_is_http() -> None:
    def statement(url: str) -> str:
        record = {"register": {"privacy_statement": url}}
        return sensor_from_row("gw", "src", "o", record).privacy_statement

    assert statement("https://example.org/p?a=1&b=2") == "https://example.org/p?a=1&b=2"
    for bad in ("javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x", "//x.org",
                "https://x.org/\nSet-Cookie: a", "http:///nohost"):  # fmt: skip
        assert statement(bad) == ""


def test_a_source_name_with_a_slash_opens_nothing() -> None:
    record = {"register": {"open_data": True}, "quantities": [{"quantity": "q", "unit": "u"}]}
    assert not sensor_from_row("gw", "a/b", "o", record).open_data
    assert sensor_from_row("gw", "a", "o", record).open_data


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def test_every_register_field_is_escaped_on_the_page() -> None:
    evil = '"><script>alert(1)</script><a href="javascript:x" onclick="y">'
    record = {
        "owner": evil, "type": evil, "driver": evil,
        "quantities": [{"quantity": evil, "unit": evil}],
        "register": {"purpose": evil, "theme": evil, "legal_ground": evil, "active_until": evil,
                     "privacy_statement": "https://x.org/" + evil, "open_data": True},
    }  # fmt: skip
    catalog = Catalog.build([sensor_from_row(evil, evil, evil, record)])
    html = page.render(catalog, {}, datetime(2026, 12, 7, tzinfo=UTC))
    tags = Tags()
    tags.feed(html)
    assert "script" not in {tag for tag, _ in tags.found}
    assert not any(a.startswith("on") for _, attrs in tags.found for a in attrs)
    assert evil not in html and "&lt;script&gt;" in html
    assert "style-src 'sha256-" in page.CSP and "script-src" not in page.CSP
