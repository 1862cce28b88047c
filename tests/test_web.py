"""The dashboard over plain HTTP (Starlette's TestClient): pages, actions, CSRF,
read-only mode, the auth hook, mounting, and the ``pgqueue web`` command."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.testclient import TestClient
from web_helpers import dead_job, make_app

import pgqueue
from pgqueue import _sql
from pgqueue.cli import _web
from pgqueue.cli._base import run
from pgqueue.web import asgi_app, basic_auth

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    app = make_app(clean_db)
    yield app
    app.close()


@pytest.fixture
def client(app: pgqueue.App) -> Iterator[TestClient]:
    with TestClient(asgi_app(app)) as c:
        yield c


def token(client: TestClient, path: str = "/jobs") -> str:
    page = client.get(path)
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, "the page has a CSRF field"
    return match.group(1)


def test_every_page_renders_with_its_sql(app: pgqueue.App, client: TestClient) -> None:
    job = dead_job(app)
    app.tasks["work.tick"].enqueue(1)
    app.add_schedule("nightly", cron="0 3 * * *", task="work.tick", args=[7])
    pages = [("/", "mail"), ("/jobs", "mail.send"), (f"/jobs/{job.id}", "Traceback"),
             ("/queues", "Pause work"), ("/schedules", "nightly"),
             ("/workers", "No live worker"), ("/dead", "1</strong> dead job")]  # fmt: skip
    for path, expect in pages:
        page = client.get(path)
        assert page.status_code == 200, path
        assert expect in page.text, path
        assert "<summary>SQL</summary>" in page.text, path
    assert client.get("/static/htmx.min.js").status_code == 200
    # Keyset pagination: no dashboard query skips rows with OFFSET.
    for name in _sql.names():
        code = "\n".join(line for line in _sql.query(name).splitlines() if "--" not in line)
        assert not name.startswith("web_") or "OFFSET" not in code.upper(), name


def test_overview_counts_and_charts(app: pgqueue.App, client: TestClient) -> None:
    dead_job(app)
    app.tasks["work.tick"].enqueue(1)
    app.tasks["work.tick"].options(delay=3600).enqueue(2)
    page = client.get("/").text
    row = re.search(r"<th scope=\"row\"><a[^>]*>work</a></th>(.*?)</tr>", page, re.S)
    assert row is not None
    cells = re.findall(r'<td class="n">(?:<a[^>]*>)?([^<]*)', row.group(1))
    assert cells[:5] == ["1", "1", "0", "0", "0"]  # ready, scheduled, running, retrying, dead
    assert page.count("<svg") == 2 and "1 failed in the last hour" in page


def test_jobs_filters_and_keyset_pages(app: pgqueue.App, client: TestClient) -> None:
    tick = app.tasks["work.tick"]
    app.enqueue_many([tick.job(i) for i in range(120)])
    tick.options(unique_key="the-one", meta={"tenant": "acme"}).enqueue(999)
    first = client.get("/jobs")
    ids = [int(i) for i in re.findall(r'name="ids" value="(\d+)"', first.text)]
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    older = re.search(r'href="(/jobs\?[^"]*before=\d+)" rel="next"', first.text)
    assert older is not None
    second = client.get(older.group(1).replace("&amp;", "&"))
    ids2 = [int(i) for i in re.findall(r'name="ids" value="(\d+)"', second.text)]
    assert len(ids2) == 50 and max(ids2) < min(ids)
    assert len(re.findall(r'name="ids"', client.get("/jobs?q=acme").text)) == 1
    assert len(re.findall(r'name="ids"', client.get("/jobs?unique_key=the-one").text)) == 1
    assert "No job matches" in client.get("/jobs?status=dead").text
    assert "No job matches" in client.get("/jobs?older=1d").text
    assert client.get("/jobs?status=bogus").status_code == 400
    # Bulk: cancel a selection of two.
    form = {"csrf": token(client), "action": "cancel", "ids": [str(ids[0]), str(ids[1])]}
    assert "cancelled 2 job(s)" in client.post("/actions/jobs", data=form).text
    assert {app.get_job(i).status for i in ids[:2]} == {"cancelled"}
    assert "no job selected" in client.post("/actions/jobs", data={**form, "ids": []}).text
    assert client.get("/jobs?older=soon").status_code == 400


def test_free_text_search_reads_one_window_of_ids_a_page(
    app: pgqueue.App, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pgqueue.web import _data

    monkeypatch.setattr(_data, "SEARCH_WINDOW", 30)
    tick = app.tasks["work.tick"]
    needle = tick.options(meta={"order": "needle-7"}).enqueue(0)
    app.enqueue_many([tick.job(i) for i in range(1, 100)])
    path, windows = "/jobs?q=needle-7", 0
    while True:
        page = client.get(path).text
        windows += 1
        if f'name="ids" value="{needle.id}"' in page:
            break
        assert "Text search read jobs" in page and "No job matches" in page
        older = re.search(r'href="(/jobs\?[^"]*)" rel="next"', page)
        assert older is not None, "an empty window links to the next one"
        path = older.group(1).replace("&amp;", "&")
    assert windows == 4  # ids 71-100, 41-70, 11-40, then 1-10


def test_retry_needs_the_csrf_token(app: pgqueue.App, client: TestClient) -> None:
    job = dead_job(app)
    refused = client.post("/actions/jobs", data={"ids": str(job.id), "action": "retry"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert app.get_job(job.id).status == "dead"
    csrf = token(client, f"/jobs/{job.id}")
    wrong = client.post("/actions/jobs", data={"ids": str(job.id), "action": "retry",
                                               "csrf": "x" * 43})  # fmt: skip
    assert wrong.status_code == 403
    cross = client.post("/actions/jobs", data={"ids": str(job.id), "action": "retry",
                                               "csrf": csrf},
                        headers={"Origin": "http://evil.example"})  # fmt: skip
    assert cross.status_code == 403
    behind_proxy = {"Origin": "https://ops.example", "X-Forwarded-Host": "ops.example"}
    form = {"ids": "999999", "action": "retry", "csrf": csrf}
    proxied = client.post("/actions/jobs", data=form, headers=behind_proxy)
    assert "retried 0 of 1 job(s)" in proxied.text
    done = client.post("/actions/jobs", data={"ids": str(job.id), "action": "retry",
                                              "csrf": csrf, "next": f"/jobs/{job.id}"},
                       follow_redirects=False)  # fmt: skip
    assert done.status_code == 303 and done.headers["location"].startswith(f"/jobs/{job.id}?")
    assert app.get_job(job.id).status == "queued"
    # An outside redirect target is not followed.
    again = client.post("/actions/jobs", data={"ids": str(job.id), "action": "cancel",
                                               "csrf": csrf, "next": "//evil.example/"},
                        follow_redirects=False)  # fmt: skip
    assert again.headers["location"].startswith("/jobs?")
    assert app.get_job(job.id).status == "cancelled"


def test_read_only_shows_no_action_and_refuses_posts(app: pgqueue.App) -> None:
    job = dead_job(app)
    with TestClient(asgi_app(app, read_only=True)) as client:
        page = client.get(f"/jobs/{job.id}")
        assert "read-only" in page.text and 'value="retry"' not in page.text
        csrf = client.cookies.get("pgqueue_csrf")
        refused = client.post("/actions/jobs", data={"ids": str(job.id), "action": "retry",
                                                     "csrf": csrf or ""})  # fmt: skip
        assert refused.status_code == 403 and "read-only" in refused.text
        for path in ("/actions/queues", "/actions/schedules", "/actions/dead"):
            assert client.post(path, data={"name": "mail", "action": "pause"}).status_code == 403
    assert app.get_job(job.id).status == "dead"
    assert not any(q.paused for q in app.list_queues())


def test_basic_auth_and_a_custom_hook(app: pgqueue.App) -> None:
    with TestClient(asgi_app(app, auth=basic_auth("ops", "s3cret"))) as client:
        denied = client.get("/")
        assert denied.status_code == 401 and "Basic" in denied.headers["www-authenticate"]
        assert client.get("/static/style.css").status_code == 401
        assert client.get("/", auth=("ops", "wrong")).status_code == 401
        assert client.get("/", auth=("ops", "s3cret")).status_code == 200
        bad = {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()}
        assert client.get("/", headers=bad).status_code == 401

    async def header_hook(request: Request) -> bool:
        return request.headers.get("x-team") == "ops"

    with TestClient(asgi_app(app, auth=header_hook)) as client:
        assert client.get("/").status_code == 401
        assert client.get("/", headers={"x-team": "ops"}).status_code == 200
    with pytest.raises(ValueError, match="non-empty"):
        basic_auth("", "x")


def test_queue_controls_from_the_form(app: pgqueue.App, client: TestClient) -> None:
    app.tasks["work.tick"].enqueue(1)
    csrf = token(client, "/queues")
    form = {"csrf": csrf, "name": "work", "action": "set", "max_running": "2",
            "rate_limit": "10", "rate_period": "60", "max_depth": "", "retention": "3600",
            "dead_retention": ""}  # fmt: skip
    assert client.post("/actions/queues", data=form).status_code == 200
    (work,) = [q for q in app.list_queues() if q.name == "work"]
    assert (work.max_running, work.rate_limit, work.rate_period, work.retention) == (
        2,
        10,
        60,
        3600,
    )
    page = client.post("/actions/queues", data={**form, "max_running": "-1"})
    assert "error: max_running must be &gt;= 0" in page.text
    client.post("/actions/queues", data={"csrf": csrf, "name": "work", "action": "pause"})
    assert [q.paused for q in app.list_queues() if q.name == "work"] == [True]
    assert "Resume work" in client.get("/queues").text
    client.post("/actions/queues", data={**form, "max_running": ""})
    assert [q.max_running for q in app.list_queues() if q.name == "work"] == [None]


def test_why_a_job_is_not_running(app: pgqueue.App, client: TestClient, clean_db: str) -> None:
    tick = app.tasks["work.tick"]
    later = tick.options(delay=600).enqueue(1)
    page = client.get(f"/jobs/{later.id}").text
    assert "scheduled: run_at" in page and "is in the future" in page
    assert "no live worker serves queue work" in page
    app.set_queue("work", paused=True, max_running=0, rate_limit=1, rate_period=60)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("UPDATE pgqueue.queues SET rate_window_start = now(), rate_window_count = 1")
        conn.execute("INSERT INTO pgqueue.workers (id, hostname, pid, queues, concurrency)"
                     " VALUES ('w1', 'host-a', 1, '{work}', 4)")  # fmt: skip
        ready = tick.enqueue(2)
        page = client.get(f"/jobs/{ready.id}").text
        assert "queue work is paused" in page
        assert "max_running=0" in page
        assert "used its rate limit of 1 per 60s" in page
        assert "no live worker" not in page
        until = datetime.now(timezone.utc) + timedelta(seconds=30)
        conn.execute("UPDATE pgqueue.jobs SET status = 'running', worker_id = 'w1',"
                     " leased_until = %s, started_at = now() WHERE id = %s",
                     (until, ready.id))  # fmt: skip
    page = client.get(f"/jobs/{ready.id}").text
    assert "lease held by worker w1 until" in page and "host-a" in page
    # An attempt the rescuer recorded (a lost lease) has no traceback nor status.
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            """UPDATE pgqueue.jobs SET errors = '[{"attempt": 1, "error": "LeaseExpired"}]'"""
        )
    page = client.get(f"/jobs/{ready.id}").text
    assert "Attempt 1 · failed" in page and "No traceback recorded" in page


def test_dead_letters_count_confirm_replay_purge(app: pgqueue.App, client: TestClient) -> None:
    for _ in range(3):
        dead_job(app)
    page = client.get("/dead?queue=mail")
    assert '<strong id="dead-count">3</strong>' in page.text
    assert '"dead-count">3<' in client.get("/dead?since=2000-01-01").text
    assert '"dead-count">0<' in client.get("/dead?since=2999-01-01T00:00").text
    assert client.get("/dead?since=yesterday").status_code == 400
    confirm = client.get("/dead?queue=mail&confirm=replay").text
    assert "Replay 3 dead job(s)?" in confirm
    csrf = token(client, "/dead?queue=mail&confirm=replay")
    done = client.post("/actions/dead", data={"csrf": csrf, "action": "replay", "queue": "nope"})
    assert "replayed 0 dead job(s)" in done.text
    done = client.post("/actions/dead", data={"csrf": csrf, "action": "replay", "queue": "mail"})
    assert "replayed 3 dead job(s)" in done.text
    assert {j.status for j in app.list_jobs()} == {"queued"}
    dead_job(app)
    assert "Purge 4…" in client.get("/dead").text
    done = client.post("/actions/dead", data={"csrf": csrf, "action": "purge", "queue": "mail"})
    assert "purged 4 dead job(s)" in done.text


def test_schedule_actions(app: pgqueue.App, client: TestClient) -> None:
    app.add_schedule("nightly", cron="0 3 * * *", task="work.tick", args=[7], missed="skip")
    app.add_schedule("paris", cron="30 9 * * *", timezone="Europe/Paris", task="work.tick")
    page = client.get("/schedules").text
    assert page.count(" 03:00:00+00:00<") == 3 and "skip" in page  # the next three fires
    assert page.count(" 09:30:00+01:00<") == 3  # in the schedule's own zone (winter time)
    csrf = token(client, "/schedules")
    for action, expect in (("pause", "paused"), ("resume", "resumed"), ("run", "enqueued job")):
        out = client.post("/actions/schedules", data={"csrf": csrf, "name": "nightly",
                                                      "action": action})  # fmt: skip
        assert f"schedule nightly {expect}" in out.text
    assert [j.task for j in app.list_jobs()] == ["work.tick"]
    out = client.post("/actions/schedules", data={"csrf": csrf, "name": "ghost", "action": "run"})
    assert "error: " in out.text and "ghost" in out.text


def test_mounted_under_a_prefix(app: pgqueue.App) -> None:
    job = dead_job(app)
    host = Starlette(routes=[Mount("/ops/queue", asgi_app(app))])
    with TestClient(host) as client:
        page = client.get(f"/ops/queue/jobs/{job.id}")
        assert page.status_code == 200
        assert 'href="/ops/queue/static/style.css"' in page.text
        assert 'action="/ops/queue/actions/jobs"' in page.text
        csrf = client.cookies.get("pgqueue_csrf")
        form = {"csrf": csrf or "", "ids": str(job.id), "action": "retry"}
        done = client.post("/ops/queue/actions/jobs", data=form, follow_redirects=False)
        assert done.headers["location"].startswith("/ops/queue/jobs")


def test_mounted_in_fastapi(app: pgqueue.App) -> None:
    fastapi = pytest.importorskip("fastapi")
    host = fastapi.FastAPI()
    host.mount("/pgqueue", asgi_app(app, read_only=True))
    with TestClient(host) as client:
        page = client.get("/pgqueue/queues")
        assert page.status_code == 200 and 'href="/pgqueue/jobs"' in page.text


def cli_web(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, *args: str
) -> tuple[int, str, dict[str, Any]]:
    seen: dict[str, Any] = {}

    def fake_run(asgi: Any, **kwargs: Any) -> None:
        seen.update(kwargs, app=asgi)

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", fake_run)
    code = run(["web", *args])
    return code, capsys.readouterr().err, seen


def test_cli_binds_loopback_and_warns_elsewhere_without_auth(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, clean_db: str
) -> None:
    code, err, seen = cli_web(monkeypatch, capsys, "--dsn", clean_db)
    assert code == 0 and seen["host"] == "127.0.0.1" and seen["port"] == 8080
    assert "WARNING" not in err and "read-write" in err
    code, err, seen = cli_web(monkeypatch, capsys, "--dsn", clean_db, "--host", "0.0.0.0",
                              "--read-only")  # fmt: skip
    assert code == 0 and "WARNING" in err and "without authentication" in err
    code, err, _ = cli_web(monkeypatch, capsys, "--dsn", clean_db, "--host", "0.0.0.0",
                           "--basic-auth", "ops:pw")  # fmt: skip
    assert code == 0 and "WARNING" not in err
    assert _web.is_loopback("::1") and _web.is_loopback("localhost")
    assert not _web.is_loopback("10.1.2.3")


def test_cli_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, capsys: Any, clean_db: str
                                 ) -> None:  # fmt: skip
    code, err, _ = cli_web(monkeypatch, capsys, "--dsn", clean_db, "--basic-auth", "hunter2")
    assert code == 2 and err.strip().count("\n") == 0 and "USER:PASSWORD" in err
    assert "hunter2" not in err
    code, err, _ = cli_web(monkeypatch, capsys, "--dsn", clean_db, "--port", "0")
    assert code == 2 and "--port" in err
    monkeypatch.setitem(__import__("sys").modules, "uvicorn", None)
    code = run(["web", "--dsn", clean_db])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'pgqueue[web]'" in err and err.strip().count("\n") == 0
