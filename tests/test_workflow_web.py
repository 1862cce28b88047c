"""The dashboard's job page of a workflow: its step log, and what a suspended one waits for
(headless Chromium, as in ``test_web_browser.py``)."""

from __future__ import annotations

import workflow_app as wf
from test_web_browser import chromium, console_errors, shot, text
from test_worker import running_worker
from test_worker_app import wait_until
from web_helpers import serve
from workflow_app import app_fixture  # noqa: F401  (the `app` fixture)

import pgqueue
from pgqueue.web import asgi_app


def test_a_workflow_job_page_shows_its_step_log(app: pgqueue.App) -> None:
    handle = wf.retrying.start("w1", 5)  # a step that failed for good, then one more
    waiting = wf.waiter.start("w2", 3600)
    with running_worker(app):
        handle.wait(timeout=10)
        wait_until(lambda: [s.kind for s in waiting.steps()][-1:] == ["event"])
    with chromium() as browser, serve(asgi_app(app)) as url:
        browser.get(f"{url}/jobs/{handle.id}")
        page = text(browser)
        assert "Workflow steps (2)" in page
        assert "wf.flaky" in page and "error: RuntimeError: flaky run 3" in page
        assert "wf.step_b" in page
        shot(browser, "workflow")
        browser.get(f"{url}/jobs/{waiting.id}")
        page = text(browser)
        assert "workflow waiting for event 'go'" in page
        assert "waiting for event go until" in page
        assert console_errors(browser) == []
