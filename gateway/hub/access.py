"""Each party's access to the hub database: PostgreSQL row-level security on `observations` and
`register`, and a database role per owner that sees only its own rows plus open data.

`install_policies` is idempotent: a mapping table `hub_owner_roles` (role -> owner, readable by
no one but its owner), a SECURITY DEFINER function `hub_owners_of(role)` that the policies call
with `current_user` (so a member of several owner roles sees each one's rows), and a SELECT
policy on each table. A row is visible to a role when its `owner` is one of the role's owners,
or when the register marks its (gateway, source) `open_data: true` (the JSON boolean; a source
is the reading's up to the first "/", as in the contract). The table owner (the ingest
service) is not subject to the policies (no FORCE), superusers never are. `observations` is
partitioned: policies and grants sit on the parent, and a role reads through the parent only
(it has no grant on a partition, so reading one directly is refused).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

MAPPING_TABLE = "hub_owner_roles"
OPEN_SOURCE = (
    "EXISTS (SELECT 1 FROM {schema}.register r WHERE r.gateway_id = observations.gateway_id"
    " AND r.source = split_part(observations.source, '/', 1)"
    " AND (r.record::jsonb -> 'register' -> 'open_data') = 'true'::jsonb)"
)
MINE = "owner IN (SELECT {schema}.hub_owners_of(current_user::text))"


def role_for(owner: str) -> str:
    """The default role name for an owner: readable, unique (a hash of the exact name), < 63."""
    slug = re.sub(r"[^a-z0-9]+", "_", owner.lower()).strip("_")[:30] or "owner"
    return f"citygw_owner_{slug}_{hashlib.sha256(owner.encode()).hexdigest()[:8]}"


def install_policies(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    """Row-level security on observations and register (idempotent; run as the tables' owner)."""
    from psycopg import sql

    schema = sql.Identifier(_schema(conn))
    statements = [
        "CREATE TABLE IF NOT EXISTS {schema}.hub_owner_roles"
        " (role_name text PRIMARY KEY, owner text NOT NULL)",
        "REVOKE ALL ON {schema}.hub_owner_roles FROM PUBLIC",
        "CREATE OR REPLACE FUNCTION {schema}.hub_owners_of(who text) RETURNS SETOF text"
        " LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$"
        " SELECT m.owner FROM {schema}.hub_owner_roles m JOIN pg_roles r ON r.rolname = m.role_name"
        " WHERE pg_has_role(who, r.oid, 'MEMBER') $$",
        "REVOKE ALL ON FUNCTION {schema}.hub_owners_of(text) FROM PUBLIC",
        "ALTER TABLE {schema}.observations ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE {schema}.register ENABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS citygw_owner_or_open ON {schema}.observations",
        "CREATE POLICY citygw_owner_or_open ON {schema}.observations FOR SELECT"
        f" USING ({MINE} OR {OPEN_SOURCE})",
        "DROP POLICY IF EXISTS citygw_owner_or_open ON {schema}.register",
        "CREATE POLICY citygw_owner_or_open ON {schema}.register FOR SELECT"
        f" USING ({MINE} OR (record::jsonb -> 'register' -> 'open_data') = 'true'::jsonb)",
    ]
    with conn.transaction():
        for statement in statements:
            conn.execute(sql.SQL(statement).format(schema=schema))


def grant_reader(
    conn: psycopg.Connection[tuple[Any, ...]], role: str, *, owner: str | None, password: str | None
) -> None:
    """Creates `role` (LOGIN) if missing, lets it SELECT observations and register through the
    policies, and maps it to `owner` (None: a role that sees open data only, e.g. for the web)."""
    from psycopg import sql

    install_policies(conn)
    schema = sql.Identifier(_schema(conn))
    name = sql.Identifier(role)
    with conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(name))
        if password is not None:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(name, sql.Literal(password)))
        for statement in (
            "GRANT USAGE ON SCHEMA {schema} TO {name}",
            "GRANT SELECT ON {schema}.observations, {schema}.register TO {name}",
            "GRANT EXECUTE ON FUNCTION {schema}.hub_owners_of(text) TO {name}",
        ):
            conn.execute(sql.SQL(statement).format(schema=schema, name=name))
        conn.execute(
            sql.SQL("DELETE FROM {}.hub_owner_roles WHERE role_name = %s").format(schema), (role,)
        )
        if owner is not None:
            conn.execute(
                sql.SQL("INSERT INTO {}.hub_owner_roles VALUES (%s, %s)").format(schema),
                (role, owner),
            )


def _schema(conn: psycopg.Connection[tuple[Any, ...]]) -> str:
    row = conn.execute("SELECT current_schema()").fetchone()
    if row is None or row[0] is None:
        raise RuntimeError("no current schema: is the search_path empty?")
    return str(row[0])
