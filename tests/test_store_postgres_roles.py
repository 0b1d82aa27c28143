"""PostgreSQL users who may not write: refused before anything is fetched (exit 2, as SQLite
refuses a file this user cannot write), with the GRANT that would let them; still able to look
(history, diff, audit). Real roles in the test server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg

from fetchheads.snapshots.store import SCHEMA_VERSION, Store
from fetchheads.snapshots.store_postgres import MIGRATIONS
from tests.support.postgres import SUPERUSER, Postgres
from tests.support.servers import ThreadedServer
from tests.support.snapshots import fetchheads, query, start_site


def user_of(url: str) -> str:
    return url.partition("//")[2].partition("@")[0]


def test_a_user_who_may_only_read_is_refused_before_fetching_and_can_still_look(
    postgres: Postgres, threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    site, target = start_site(threaded_server)
    url = postgres.new_database()
    assert fetchheads("--db", url, "--audit", "-q", target)[0] == 0
    assert fetchheads("--db", url, "-q", target)[0] == 0
    reader = postgres.new_role(url, "SELECT ON ALL TABLES IN SCHEMA public")
    user = user_of(reader)
    served = site.served

    code, out, err = fetchheads("--db", reader, "--changes", target)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        f"Error: Invalid value for --db: {reader}: cannot be written: user {user} may not "
        "INSERT or UPDATE runs, or INSERT snapshots, which fetchheads --db needs; left as is: "
        f"have the owner run GRANT INSERT, UPDATE ON runs TO {user}; "
        f"GRANT INSERT ON snapshots TO {user}"
    )
    assert site.served == served  # nothing fetched in vain
    assert query(url, "SELECT count(*), count(finished_at) FROM runs") == [(2, 2)]

    code, out, err = fetchheads("prune", "--db", reader, "--keep", "1")
    assert code == 2
    assert (
        f"user {user} may not UPDATE or DELETE runs, or DELETE snapshots, or INSERT pruned_keys, which "
        "prune needs" in err
    )
    sqlite = str(tmp_path / "heads.db")
    assert fetchheads("db", "copy", url, sqlite)[0] == 0
    code, _, err = fetchheads("db", "copy", sqlite, reader)
    assert code == 2
    assert f"GRANT INSERT ON pruned_keys TO {user}" in err
    assert query(url, "SELECT count(*) FROM snapshots") == [(2,)]

    # Looking needs no more than SELECT.
    code, out, _ = fetchheads("history", "--db", reader, target)
    assert (code, len(out.splitlines())) == (0, 2)
    diff = fetchheads("diff", "--db", reader, target)
    assert diff[0] == 0
    assert diff == fetchheads("diff", "--db", url, target)
    assert fetchheads("audit", "--db", reader, target)[0] == 0
    assert fetchheads("db", "copy", reader, str(tmp_path / "copy.db"))[0] == 0


def test_a_user_granted_what_a_fetch_needs_records_and_is_refused_prune(
    postgres: Postgres, threaded_server: Callable[..., ThreadedServer]
) -> None:
    """Least privilege for a fleet, as docs/snapshots.md lists it."""
    _, target = start_site(threaded_server)
    url = postgres.new_database()
    Store.open(url).close()
    writer = postgres.new_role(
        url,
        "SELECT ON fetchheads_meta",
        "SELECT, INSERT, UPDATE ON runs",
        "SELECT, INSERT ON snapshots",
    )
    assert fetchheads("--db", writer, "--changes", "-q", target)[:2] == (0, "")
    assert query(url, "SELECT state FROM runs") == [("finished",)]
    assert fetchheads("prune", "--db", writer, "--keep", "1")[0] == 2


def test_a_user_who_may_not_read_the_mark_is_told_what_to_grant(
    postgres: Postgres, threaded_server: Callable[..., ThreadedServer]
) -> None:
    site, target = start_site(threaded_server)
    url = postgres.new_database()
    assert fetchheads("--db", url, "-q", target)[0] == 0
    user = postgres.new_role(url, "SELECT, INSERT, UPDATE ON runs", "SELECT, INSERT ON snapshots")
    name = user_of(user)
    message = (
        f"{user}: cannot read: permission denied for table fetchheads_meta; have the owner run "
        f"GRANT SELECT ON fetchheads_meta, runs, snapshots, pruned_keys TO {name}"
    )
    code, out, err = fetchheads("--db", user, target)
    assert (code, out, err.splitlines()[-1]) == (2, "", f"Error: Invalid value for --db: {message}")
    assert site.served == 1
    assert fetchheads("history", "--db", user, target) == (1, "", f"fetchheads: {message}\n")


def test_an_older_schema_is_refused_to_a_user_who_does_not_own_it(
    postgres: Postgres, threaded_server: Callable[..., ThreadedServer]
) -> None:
    site, target = start_site(threaded_server)
    url = postgres.new_database()
    with psycopg.connect(url) as connection:
        for script in MIGRATIONS[:3]:
            connection.execute(script.encode())
        connection.execute("UPDATE fetchheads_meta SET schema_version = 3")
    user = postgres.new_role(url, "SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public")
    refusal = (
        f"{user}: cannot be written: its schema version 3 must be upgraded to {SCHEMA_VERSION}, "
        f"which only the owner of its tables ({SUPERUSER}) may do (must be owner of table "
        f"runs); left as is: run fetchheads --db on it once as {SUPERUSER}"
    )

    code, out, err = fetchheads("--db", user, target)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == f"Error: Invalid value for --db: {refusal}"
    assert site.served == 0
    assert query(url, "SELECT schema_version FROM fetchheads_meta") == [(3,)]
    # A reader cannot read it before the owner migrates it (as with SQLite: exit 1).
    code, out, err = fetchheads("history", "--db", user, target)
    assert (code, out, err) == (1, "", f"fetchheads: {refusal}\n")

    assert fetchheads("--db", url, "-q", target)[0] == 0  # the owner migrates it
    assert fetchheads("--db", user, "-q", target)[0] == 0
    assert query(url, "SELECT count(*) FROM snapshots") == [(2,)]


def test_a_new_database_is_refused_to_a_user_who_may_not_create_its_tables(
    postgres: Postgres, threaded_server: Callable[..., ThreadedServer]
) -> None:
    """PostgreSQL 15 lets no one but the owner create in schema public."""
    site, target = start_site(threaded_server)
    url = postgres.new_database()
    user = postgres.new_role(url)
    name = user_of(user)
    code, out, err = fetchheads("--db", user, target)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        f"Error: Invalid value for --db: {user}: cannot be written: user {name} may not create "
        "the tables in schema public (permission denied for schema public); left as is: have "
        f"its owner run GRANT CREATE ON SCHEMA public TO {name}, or run fetchheads --db on it "
        "once as a user who may"
    )
    assert site.served == 0
    assert query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_prune_and_copy_work_with_exactly_the_privileges_docs_list(
    postgres: Postgres, threaded_server: Callable[..., ThreadedServer], tmp_path: Path
) -> None:
    """Least privilege for the two other writers, as docs/snapshots.md lists it: passing the
    check up front must mean the command then works (INSERT ... ON CONFLICT reads too)."""
    _, target = start_site(threaded_server)
    url = postgres.new_database()
    for _ in range(3):
        assert fetchheads("--db", url, "-q", target)[0] == 0
    pruner = postgres.new_role(
        url,
        "SELECT ON fetchheads_meta",
        "SELECT, UPDATE, DELETE ON runs",
        "SELECT, DELETE ON snapshots",
        "SELECT, INSERT ON pruned_keys",
    )
    # Without SELECT on pruned_keys, prune would fail half-way: it is refused up front.
    short = postgres.new_role(
        url,
        "SELECT ON fetchheads_meta",
        "SELECT, UPDATE, DELETE ON runs",
        "SELECT, DELETE ON snapshots",
        "INSERT ON pruned_keys",
    )
    code, _, err = fetchheads("prune", "--db", short, "--keep", "1")
    assert code == 2
    assert "GRANT SELECT ON pruned_keys" in err
    assert query(url, "SELECT count(*) FROM snapshots") == [(3,)]
    code, _, err = fetchheads("prune", "--db", pruner, "--keep", "1")
    assert code == 0, err
    assert query(url, "SELECT key FROM pruned_keys") != []
    # A copy of a database that has pruned keys, by a user with what a copy needs.
    sqlite = str(tmp_path / "heads.db")
    assert fetchheads("db", "copy", url, sqlite)[0] == 0
    other = postgres.new_database()
    Store.open(other).close()
    copier = postgres.new_role(
        other,
        "SELECT ON fetchheads_meta",
        "SELECT, INSERT, UPDATE ON runs",
        "SELECT, INSERT ON snapshots",
        "SELECT, INSERT ON pruned_keys",
    )
    code, _, err = fetchheads("db", "copy", sqlite, copier)
    assert code == 0, err
    assert query(other, "SELECT count(*) FROM pruned_keys") == query(
        url, "SELECT count(*) FROM pruned_keys"
    )
    assert query(other, "SELECT count(*) FROM snapshots") == [(1,)]
