"""Least privilege: ``pgqueue migrate --grant`` and what each role can and cannot do.

One database of its own, migrated and granted with a prefix unique to this run
(roles are cluster-wide), and a LOGIN user per role, each a member of its group
role only (``GRANT <prefix>_worker TO <login>``), as the README says to do.
Every test logs in as one of them; the roles and the database are dropped at
the end.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from starlette.testclient import TestClient
from test_worker_app import EXECUTIONS_DDL, worker_process

import pgqueue
from pgqueue._testdb import create_database, drop_database
from pgqueue.cli._base import run
from pgqueue.maintenance.pruner import Pruner
from pgqueue.maintenance.rescuer import Rescuer
from pgqueue.maintenance.scheduler import Scheduler
from pgqueue.migrate import grant_dsn, grant_sql, migrate_dsn, role_names
from pgqueue.web import asgi_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PAYLOAD = ("args", "kwargs", "meta", "result", "errors", "last_error", "progress")
KINDS = ("producer", "worker", "reader", "admin")


@dataclass
class Roles:
    owner: str  # the superuser's DSN of the database
    prefix: str
    dsn: dict[str, str]  # kind -> a login user's DSN

    def group(self, kind: str) -> str:
        return role_names(self.prefix)[kind]


def _login_dsn(dsn: str, user: str, password: str) -> str:
    params: dict[str, Any] = {**conninfo_to_dict(dsn), "user": user, "password": password}
    return make_conninfo("", **params)


@pytest.fixture(scope="module")
def roles(pg_dsn: str) -> Iterator[Roles]:
    prefix = f"t{secrets.token_hex(4)}"
    name, owner = create_database(pg_dsn)
    logins = {kind: f"{prefix}_{kind}_login" for kind in KINDS}
    password = secrets.token_hex(8)
    try:
        migrate_dsn(owner)
        grant_dsn(owner, prefix)
        with psycopg.connect(owner, autocommit=True) as conn:
            conn.execute(EXECUTIONS_DDL)  # what test_worker_app's tasks write
            for kind, login in logins.items():
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}; GRANT {} TO {}").format(
                        sql.Identifier(login), sql.Literal(password),
                        sql.Identifier(f"{prefix}_{kind}"), sql.Identifier(login),
                    )
                )  # fmt: skip
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT ON public.executions, public.tx_effects TO {}")
                .format(sql.Identifier(f"{prefix}_worker"))
            )
        dsns = {kind: _login_dsn(owner, login, password) for kind, login in logins.items()}
        yield Roles(owner, prefix, dsns)
    finally:
        drop_database(pg_dsn, name)  # first: the roles own objects in it
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for role in [*logins.values(), *role_names(prefix).values()]:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def clean(roles: Roles) -> Roles:
    with psycopg.connect(roles.owner, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE pgqueue.jobs, pgqueue.schedules, pgqueue.workers, pgqueue.queues,"
            " public.executions, public.tx_effects RESTART IDENTITY"
        )
    return roles


def counts(roles: Roles) -> dict[str, int]:
    """Jobs by status, as the database's owner sees them."""
    with psycopg.connect(roles.owner) as conn:
        rows = conn.execute("SELECT status, count(*) FROM pgqueue.jobs GROUP BY 1").fetchall()
    return {status: n for status, n in rows}


def denied(dsn: str, statement: str, params: Any = None) -> str:
    """Run ``statement`` as the login of ``dsn``; return PostgreSQL's refusal."""
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
        conn.execute(statement, params)
    return str(e.value)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = run(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


# -- the SQL and its idempotence ------------------------------------------------------


def test_grant_sql_is_the_named_file_with_the_roles_renamed() -> None:
    default = grant_sql()
    assert "CREATE ROLE %I NOLOGIN" in default and "pgqueue_producer" in default
    renamed = grant_sql("acme_q")
    assert "pgqueue_producer" not in renamed and "acme_q_producer" in renamed
    assert "pgqueue.jobs" in renamed and "pgqueue_alembic_version" in renamed
    for bad in ("Upper", "1x", "a-b", "x'; DROP ROLE postgres; --", "a" * 42, ""):
        with pytest.raises(ValueError, match="role prefix"):
            grant_sql(bad)


def test_print_sql_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = "postgresql://x@127.0.0.1:1/none"
    argv = ["migrate", "--grant", "--print-sql", "--role-prefix", "acme", "--dsn", nowhere]
    assert run(argv) == 0
    assert capsys.readouterr().out == grant_sql("acme") + ";\n"
    code, err = cli(capsys, "migrate", "--print-sql", "--dsn", nowhere)
    assert code == 2 and "pass both" in err
    code, err = cli(capsys, "migrate", "--grant", "--role-prefix", "A;", "--dsn", nowhere)
    assert code == 2 and "role prefix" in err  # before any connection


def test_grant_runs_again_and_roles_are_nologin_groups(roles: Roles) -> None:
    grant_dsn(roles.owner, roles.prefix)  # idempotent
    with psycopg.connect(roles.owner) as conn:
        rows = conn.execute(
            "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s) ORDER BY 1",
            (list(role_names(roles.prefix).values()),),
        ).fetchall()
        owner = conn.execute(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'pgqueue'"
        ).fetchone()
    assert [r[1] for r in rows] == [False] * 4 and len(rows) == 4
    assert owner == (roles.group("admin"),)


def test_grant_by_the_schemas_owner_with_createrole(pg_dsn: str) -> None:
    """No superuser: the database's owner migrates and grants; it keeps its rights
    through pgqueue_admin, and migrates again as that role."""
    prefix = f"o{secrets.token_hex(4)}"
    owner_login, password = f"{prefix}_owner", secrets.token_hex(8)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
            sql.Identifier(owner_login), sql.Literal(password)))  # fmt: skip
    name, superuser_dsn = create_database(pg_dsn)
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(owner_login)))  # fmt: skip
        dsn = _login_dsn(superuser_dsn, owner_login, password)
        migrate_dsn(dsn)
        grant_dsn(dsn, prefix)
        grant_dsn(dsn, prefix)  # again: idempotent for it too
        migrate_dsn(dsn, "0003", down=True)
        migrate_dsn(dsn)  # as the schema's owner, the group
        with psycopg.connect(dsn) as conn:
            member = conn.execute(
                "SELECT pg_has_role(current_user, %s, 'MEMBER')", (f"{prefix}_admin",)
            ).fetchone()
            owners = conn.execute(
                "SELECT DISTINCT proowner::regrole::text FROM pg_proc"
                " WHERE pronamespace = 'pgqueue'::regnamespace"
            ).fetchall()
        assert member == (True,) and owners == [(f"{prefix}_admin",)]
    finally:
        drop_database(pg_dsn, name)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for role in [*role_names(prefix).values(), owner_login]:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


# -- producer -----------------------------------------------------------------------


def test_producer_enqueues_single_bulk_unique_and_in_its_transaction(clean: Roles) -> None:
    app = pgqueue.App(clean.dsn["producer"])
    ref = app.task_ref("t.record")
    try:
        one = ref.enqueue(1)
        assert one.status == "queued" and one.args == [1]
        assert len(app.enqueue_many([ref.job(i) for i in range(100)])) == 100  # COPY
        assert len(app.enqueue_many([ref.job(i) for i in range(5)])) == 5  # one INSERT
        keyed = ref.options(unique_key="k").enqueue(2)
        again = ref.options(unique_key="k").enqueue(3)
        # The holder, seen through pgqueue.unique_holders: never its arguments.
        assert again.id == keyed.id and again.args is None and again.kwargs is None
        batch = app.enqueue_many([ref.options(unique_key=f"b{i % 2}").job(i) for i in range(4)])
        assert len({j.id for j in batch}) == 2
        with psycopg.connect(clean.dsn["producer"]) as conn:
            assert ref.options(connection=conn, unique_key="k").enqueue(9).id == keyed.id
            ref.options(connection=conn).enqueue(4)
            app.enqueue_many([ref.job(i) for i in range(70)], connection=conn)
            conn.rollback()  # nothing of it stays
            ref.options(connection=conn).enqueue(5)
            app.enqueue_many([ref.job(i) for i in range(70)], connection=conn)
            conn.commit()
        assert asyncio.run(enqueue_async(ref, keyed.id)) == keyed.id
        engine = create_engine(
            "postgresql+psycopg://", creator=lambda: psycopg.connect(clean.dsn["producer"])
        )
        with Session(engine) as session:
            ref.options(connection=session).enqueue(8)
            session.commit()
        engine.dispose()
        with psycopg.connect(clean.owner, autocommit=True) as conn:
            conn.execute("INSERT INTO pgqueue.queues (name, max_depth) VALUES ('small', 1)")
        small = app.task_ref("t.record", queue="small")
        small.enqueue(6)
        with pytest.raises(pgqueue.QueueFull):
            small.enqueue(7)  # max_depth through pgqueue.lock_depth()
        with pytest.raises(pgqueue.QueueFull):
            app.enqueue_many([small.job(i) for i in range(80)])
    finally:
        app.close()
    assert counts(clean) == {"queued": 1 + 100 + 5 + 1 + 2 + 1 + 70 + 1 + 1 + 1}


def test_producer_enqueues_flows_and_dependents_of_existing_jobs(clean: Roles) -> None:
    app = pgqueue.App(clean.dsn["producer"])
    ref = app.task_ref("t.record")
    try:
        parent = ref.enqueue(1)
        child = ref.options(depends_on=[parent]).enqueue(2)
        assert child.status == "blocked" and child.parent_ids == [parent.id]
        flow = app.enqueue_flow(
            pgqueue.chord([ref.job(i) for i in range(3)], ref.job())
        )
        assert len(flow.jobs) == 4
        assert flow.counts() == {"queued": 3, "blocked": 1}  # statuses it may read
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.get_flow(flow.id)  # its jobs whole, arguments included: the reader's
    finally:
        app.close()
    assert counts(clean) == {"queued": 1 + 3, "blocked": 1 + 1}
    with psycopg.connect(clean.owner) as conn:
        (edges,) = conn.execute("SELECT count(*) FROM pgqueue.job_dependencies").fetchone() or (0,)
    assert edges == 1 + 3


async def enqueue_async(ref: Any, held: int) -> int:
    """The async path: a new job, and a held key answered by its holder."""
    await ref.enqueue_async(10)
    job = await ref.options(unique_key="k").enqueue_async(11)
    return int(job.id) if job.id == held else -1


@pytest.mark.parametrize("column", PAYLOAD)
def test_producer_cannot_read_any_jobs_payload(clean: Roles, column: str) -> None:
    producer = clean.dsn["producer"]
    message = denied(producer, f"SELECT {column} FROM pgqueue.jobs")
    assert "permission denied for table jobs" in message


def test_producer_cannot_change_or_peek_through_views(clean: Roles) -> None:
    producer = clean.dsn["producer"]
    app = pgqueue.App(producer)
    try:
        job = app.task_ref("t.record").enqueue(1)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.get_job(job.id)  # a whole job: arguments and result included
    finally:
        app.close()
    for statement in (
        "SELECT * FROM pgqueue.dead_jobs",
        "SELECT * FROM pgqueue.schedules",
        "UPDATE pgqueue.jobs SET priority = 9",
        "DELETE FROM pgqueue.jobs",
        "INSERT INTO pgqueue.jobs (task, result) VALUES ('x', '1')",
        "INSERT INTO pgqueue.jobs (task, worker_id) VALUES ('x', 'w')",
        "UPDATE pgqueue.queues SET paused = true",
        "CREATE TABLE pgqueue.mine (x int)",
    ):
        denied(producer, statement)
    assert counts(clean) == {"queued": 1}


def test_a_missing_privilege_is_one_line_on_the_cli(
    clean: Roles, capsys: pytest.CaptureFixture[str]
) -> None:
    producer = clean.dsn["producer"]
    code, err = cli(capsys, "jobs", "list", "--dsn", producer)
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "permission denied for table jobs" in err and "lacks a privilege" in err
    code, err = cli(capsys, "migrate", "--grant", "--dsn", producer)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "cannot grant" in err
    code, err = cli(capsys, "migrate", "--downgrade", "--revision", "0003", "--dsn", producer)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "cannot migrate" in err
    code, err = cli(capsys, "enqueue", "t.record", "--args", "[1]", "--dsn", producer)
    assert code == 0, err
    assert counts(clean) == {"queued": 1}


# -- worker -------------------------------------------------------------------------


def test_worker_drains_jobs_end_to_end(clean: Roles) -> None:
    producer = pgqueue.App(clean.dsn["producer"])
    try:
        producer.enqueue_many([producer.task_ref("t.record").job(i) for i in range(200)])
        producer.enqueue_many([producer.task_ref("t.tx_insert").job(1000 + i) for i in range(5)])
    finally:
        producer.close()
    with worker_process(clean.dsn["worker"], "--burst", "--concurrency", "8") as worker:
        assert worker.wait(60) == 0, worker.output()
    assert counts(clean) == {"succeeded": 205}
    with psycopg.connect(clean.owner) as conn:
        assert conn.execute("SELECT count(*) FROM public.tx_effects").fetchone() == (5,)


def test_a_worker_without_the_worker_role_stops_in_one_line(clean: Roles) -> None:
    with worker_process(clean.dsn["reader"], "--burst") as worker:
        assert worker.wait(30) == 1
        log = worker.output()
    assert "Traceback" not in log
    assert 'event=worker_failed' in log and 'error="permission denied for table jobs"' in log
    # A supervisor checks first, instead of restarting children that can only fail.
    with worker_process(clean.dsn["producer"], "--processes", "2") as supervisor:
        assert supervisor.wait(30) == 1
        log = supervisor.output()
    assert "Traceback" not in log and "child_crashed" not in log
    assert "the database role lacks SELECT on pgqueue.jobs, UPDATE on pgqueue.jobs" in log


def test_worker_runs_rescue_prune_and_cron(clean: Roles) -> None:
    app = pgqueue.App(clean.dsn["worker"])

    @app.task(name="t.noop", queue="rated")
    def noop(n: int) -> int:
        return n

    try:
        with psycopg.connect(clean.owner, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO pgqueue.jobs (task, status, attempts, leased_until, lease_token)"
                " VALUES ('t.record', 'running', 1, now() - interval '1 minute',"
                " gen_random_uuid())"
            )
            conn.execute(
                "INSERT INTO pgqueue.jobs (task, status, finished_at)"
                " VALUES ('t.record', 'succeeded', now() - interval '2 days')"
            )
            conn.execute("INSERT INTO pgqueue.queues (name, rate_limit) VALUES ('rated', 5)")
        assert Rescuer(app.database).run_once() == 1
        assert Pruner(app.database).run_once() == 1
        app.add_schedule("tick", cron="* * * * *", task="t.record", args=[1])
        app.schedule("t.record", cron="0 * * * *", name="hourly", args=[2])
        app.sync_schedules()
        with psycopg.connect(clean.owner, autocommit=True) as conn:
            conn.execute("UPDATE pgqueue.schedules SET next_run_at = now() - interval '1 s'")
        assert Scheduler(app.database, app.registry, sync=False).tick().fired == 2
        noop.enqueue(3)  # a rate-limited claim writes the queue's window
        assert app.run_worker("rated", until_empty=True, poll_interval=0.1) == 0
        # The operators' job and cron commands.
        with psycopg.connect(clean.owner, autocommit=True) as conn:
            dead = [r[0] for r in conn.execute(
                "INSERT INTO pgqueue.jobs (task, status, attempts, finished_at) VALUES"
                " ('t.x', 'dead', 3, now()), ('t.x', 'dead', 3, now()),"
                " ('t.x', 'dead', 3, now()) RETURNING id")]  # fmt: skip
        assert app.retry_jobs([dead[0]]) == [dead[0]]
        assert app.replay_dead(task="t.x") == 2
        assert app.cancel_jobs(dead)["cancelled"] == dead
        assert app.purge(task="t.x") == 3
        app.pause_schedule("tick")
        app.resume_schedule("tick")
        app.remove_schedule("tick")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.pause_queue("default")  # queue controls are the admin's
    finally:
        app.close()
    assert counts(clean) == {"queued": 3, "succeeded": 1}  # rescued, 2 fires; noop
    denied(clean.dsn["worker"], "DROP TABLE pgqueue.jobs")
    denied(clean.dsn["worker"], "ALTER TABLE pgqueue.jobs ADD COLUMN x int")


# -- reader -------------------------------------------------------------------------


def test_reader_renders_the_read_only_dashboard_and_changes_nothing(
    clean: Roles, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = pgqueue.App(clean.owner)
    try:
        job = owner.task_ref("t.record").enqueue(1)
        owner.add_schedule("nightly", cron="0 3 * * *", task="t.record", args=[7])
    finally:
        owner.close()
    with psycopg.connect(clean.owner, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO pgqueue.jobs (task, status, result, finished_at)"
            " VALUES ('t.record', 'succeeded', '{\"ok\": 1}', now()) RETURNING id"
        ).fetchone()
    assert row is not None
    done = row[0]
    app = pgqueue.App(clean.dsn["reader"])
    try:
        with TestClient(asgi_app(app, read_only=True)) as client:
            for path in ("/", "/jobs", f"/jobs/{job.id}", "/queues", "/schedules",
                         "/workers", "/dead"):  # fmt: skip
                page = client.get(path)
                assert page.status_code == 200, (path, page.text[:300])
                assert "read-only" in page.text
        assert app.get_job(job.id).args == [1]
        assert app.get_job(done).wait(timeout=5) == {"ok": 1}
        assert app.queue_stats()[0]["queue"] == "default"
        assert [j.id for j in app.list_jobs()] == [done, job.id]
    finally:
        app.close()
    reader = clean.dsn["reader"]
    for statement in (
        "UPDATE pgqueue.jobs SET priority = 9",
        "DELETE FROM pgqueue.jobs",
        "INSERT INTO pgqueue.jobs (task) VALUES ('x')",
        "UPDATE pgqueue.schedules SET enabled = false",
        "DELETE FROM pgqueue.workers",
    ):
        denied(reader, statement)
    for command in (["stats"], ["jobs", "list"], ["jobs", "show", str(job.id)]):
        code, err = cli(capsys, *command, "--dsn", reader)
        assert code == 0, (command, err)
    code, err = cli(capsys, "cancel", str(job.id), "--dsn", reader)
    assert code == 1 and "Traceback" not in err and "permission denied" in err
    assert counts(clean) == {"queued": 1, "succeeded": 1}


# -- admin --------------------------------------------------------------------------


def test_admin_migrates_and_later_tables_reach_the_worker_and_reader(
    clean: Roles, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = clean.dsn["admin"]
    code, err = cli(capsys, "migrate", "--downgrade", "--revision", "0003", "--dsn", admin)
    assert code == 0, err
    code, err = cli(capsys, "migrate", "--dsn", admin)
    assert code == 0, err
    with psycopg.connect(admin) as conn:
        function_owner = conn.execute(
            "SELECT proowner::regrole::text FROM pg_proc WHERE proname = 'unique_holders'"
        ).fetchone()
        # What a later migration does, as `pgqueue migrate` runs it: as the schema's owner.
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(clean.group("admin"))))
        conn.execute("CREATE TABLE pgqueue.later (x int)")
        conn.commit()
    assert function_owner == (clean.group("admin"),)
    try:
        with psycopg.connect(clean.dsn["worker"]) as conn:
            conn.execute("INSERT INTO pgqueue.later VALUES (1)")
        with psycopg.connect(clean.dsn["reader"]) as conn:
            assert conn.execute("SELECT x FROM pgqueue.later").fetchall() == [(1,)]
        denied(clean.dsn["reader"], "DELETE FROM pgqueue.later")
        denied(clean.dsn["producer"], "SELECT x FROM pgqueue.later")
        # Re-run after the upgrade: the worker keeps the new table, the producer its list.
        grant_dsn(clean.owner, clean.prefix)
        with psycopg.connect(clean.dsn["worker"]) as conn:
            conn.execute("UPDATE pgqueue.later SET x = 2")
            conn.execute("DELETE FROM pgqueue.later")
        denied(clean.dsn["producer"], "SELECT x FROM pgqueue.later")
        denied(clean.dsn["worker"], "UPDATE pgqueue.queues SET paused = true")
        app = pgqueue.App(clean.dsn["producer"])
        try:
            first = app.task_ref("t.record").options(unique_key="u").enqueue(1)
            assert app.task_ref("t.record").options(unique_key="u").enqueue(2).id == first.id
        finally:
            app.close()
    finally:
        with psycopg.connect(admin) as conn:
            conn.execute("DROP TABLE pgqueue.later")
