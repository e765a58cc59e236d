"""Each party's access, in a real PostgreSQL 15 cluster: `citygw hub grant-owner` gives an owner
a role that reads only its own rows of `observations` and `register` plus open data (row-level
security on the partitioned parent); `grant-reader` a role that reads open data only, enough
for `hub serve`. Expectations are computed from the fixture's readings and register, the
contract's rule: a reading's register entry is its source up to the first "/".
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hub_serve_setup import (
    REGISTER,
    REPO,
    fill_postgresql,
    hub_serve,
    postgresql_cluster,
    readings,
)

pytestmark = pytest.mark.integration


def citygw(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, str]]:
    """A filled cluster and the DSN of each role: superuser, two owners, the web reader."""
    import psycopg

    with postgresql_cluster() as dsn:
        fill_postgresql(dsn)
        roles = {
            "admin": "citygw",
            "burgermeetnet": citygw("hub", "grant-owner", "--db", dsn, "burgermeetnet"),
            "gemeente": citygw("hub", "grant-owner", "--db", dsn, "gemeente", "--role", "gem"),
            "web": citygw("hub", "grant-reader", "--db", dsn, "web"),
        }
        citygw("hub", "grant-owner", "--db", dsn, "gemeente", "--role", "gem")  # idempotent
        with psycopg.connect(dsn, autocommit=True) as db:  # a person in both owners' roles
            db.execute("CREATE ROLE alice LOGIN")
            db.execute(f'GRANT "{roles["burgermeetnet"]}", gem TO alice')
            db.execute("CREATE ROLE mallory LOGIN")  # granted nothing by citygw
            db.execute("GRANT SELECT ON observations TO mallory")  # a careless DBA
        roles["mallory"] = "mallory"
        roles["alice"] = "alice"
        yield {who: dsn.replace("//citygw@", f"//{role}@") for who, role in roles.items()}


def rows(dsn: str, sql: str) -> set[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn) as db:
        return set(db.execute(sql).fetchall())


def open_sources() -> set[tuple[str, str]]:
    return {
        (gateway, record["source"])
        for gateway, record in REGISTER
        if isinstance(record["register"], dict) and record["register"]["open_data"] is True
    }


def expected_observations(*owners: str) -> set[tuple[Any, ...]]:
    return {
        (r.gateway, r.seq)
        for r in readings()
        if r.owner in owners or (r.gateway, r.source.split("/", 1)[0]) in open_sources()
    }


def expected_register(*owners: str) -> set[tuple[Any, ...]]:
    return {
        (gateway, record["source"])
        for gateway, record in REGISTER
        if record["owner"] in owners or (gateway, record["source"]) in open_sources()
    }


@pytest.mark.parametrize(
    ("who", "owners"),
    [
        ("burgermeetnet", ("burgermeetnet",)),
        ("gemeente", ("gemeente",)),
        ("web", ()),
        ("alice", ("burgermeetnet", "gemeente")),
        ("admin", ("burgermeetnet", "gemeente", "x")),  # the tables' owner: every row
    ],
)
def test_a_role_sees_its_owners_rows_and_open_data_only(
    cluster: dict[str, str], who: str, owners: tuple[str, ...]
) -> None:
    seen = rows(cluster[who], "SELECT gateway_id, seq FROM observations")
    assert seen == expected_observations(*owners)
    register = rows(cluster[who], "SELECT gateway_id, source FROM register")
    assert register == expected_register(*owners)


def test_an_owner_role_reads_through_the_parent_only_and_writes_nothing(
    cluster: dict[str, str],
) -> None:
    import psycopg

    for sql in (
        "SELECT count(*) FROM observations_p202612",
        "SELECT count(*) FROM observations_other",
        "INSERT INTO observations (gateway_id, epoch, seq, ts) VALUES ('g', 1, 1, now())",
        "UPDATE register SET owner = 'burgermeetnet'",
        "SELECT count(*) FROM hub_owner_roles",
        "SELECT * FROM gateways",
    ):
        with (
            psycopg.connect(cluster["burgermeetnet"]) as db,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            db.execute(sql)


def test_hub_serve_runs_as_the_open_data_reader(cluster: dict[str, str]) -> None:
    import json
    import urllib.request

    with hub_serve(cluster["web"]) as url:
        with urllib.request.urlopen(f"{url}/v1.1/Things", timeout=30) as response:
            things = json.loads(response.read())["value"]
        with urllib.request.urlopen(f"{url}/", timeout=30) as response:
            page = response.read().decode()
    assert len(things) == 3
    assert "pm-school" in page and "counter" not in page  # the web role sees open rows only


def test_a_role_citygw_did_not_make_gets_nothing_even_with_a_table_grant(
    cluster: dict[str, str],
) -> None:
    """Row-level security is on for every role but the tables' owner: a role granted SELECT by
    hand, with no owner mapping and no right to the policy's function, is refused."""
    import psycopg

    with (
        psycopg.connect(cluster["mallory"]) as db,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        db.execute("SELECT count(*) FROM observations")
