"""Flows in a real browser (headless Chromium, as ``test_web_browser``): a chord run by
a real worker, a flow stopped by a dead parent, a blocked job explained, the list.

With ``PGQUEUE_SCREENSHOTS=docs/screenshots`` it saves ``flow.png``,
``flow-failed.png``, ``job-blocked.png`` and ``flows.png`` there (the README
shows them).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_web_browser import chromium, console_errors, shot, text
from web_helpers import make_app, running_worker, serve, wait_until

import pgqueue
from pgqueue.web import asgi_app


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    app = make_app(clean_db)

    @app.task(name="crawl.fetch", queue="crawl")
    def fetch(url: str) -> int:
        if "broken" in url:
            raise pgqueue.Discard(f"{url}: 404")
        return len(url)

    @app.task(name="crawl.merge", queue="crawl")
    def merge(sizes: list[int]) -> int:
        return sum(sizes)

    @app.task(name="crawl.store", queue="crawl")
    def store(total: int) -> dict[str, int]:
        return {"stored": total}

    @app.task(name="crawl.report", queue="crawl")
    def report() -> str:
        return "sent"

    yield app
    app.close()


def test_flows_drawn_after_a_real_worker_ran_them(app: pgqueue.App) -> None:
    fetch, merge, store, report = (app.tasks[f"crawl.{n}"]
                                   for n in ("fetch", "merge", "store", "report"))  # fmt: skip
    urls = [f"https://example.com/{p}" for p in ("a", "bb", "ccc", "dddd", "eeeee", "ffffff",
                                                 "g", "hh", "iii", "jjjj", "kkkkk")]  # fmt: skip
    done = app.enqueue_flow(pgqueue.chain(pgqueue.chord([fetch.job(u) for u in urls],
                                                        merge.job()), store.job()))  # fmt: skip
    cleanup = report.options(pass_result=False, on_parent_failure="run")
    failed = app.enqueue_flow(pgqueue.chain(
        pgqueue.chord([fetch.job("https://example.com/ok"), fetch.job("https://broken/x")],
                      merge.job()), cleanup.job()))  # fmt: skip
    with running_worker(app, queues=("crawl",)):
        assert done.wait(timeout=30) == {"stored": sum(len(u) for u in urls)}
        wait_until(lambda: failed.status() != "running")
    # A flow that waits: its first job not run yet (no worker now), the rest blocked.
    waiting = app.enqueue_flow(pgqueue.chain(fetch.job("https://example.com/later"),
                                             merge.job(), store.job()))  # fmt: skip
    with chromium() as browser, serve(asgi_app(app)) as url:
        # The list: newest first, with counts per status.
        browser.get(url + "/flows")
        rows = browser.find_elements("css selector", "main table tbody tr")
        assert [r.text.split()[0] for r in rows] == [str(waiting.id), str(failed.id),
                                                     str(done.id)]  # fmt: skip
        assert "succeeded 13" in rows[2].text
        shot(browser, "flows")

        # The chord: 11 fetches fold into 7 boxes and a group; every edge is green.
        browser.find_element("link text", str(done.id)).click()
        assert browser.title == f"Flow {done.id} · pgqueue"
        boxes = browser.find_elements("css selector", "svg.flow a.node")
        assert len(boxes) == 8 + 1 + 1
        group = browser.find_element("css selector", "svg.flow a.node.group")
        assert "+4 x fetch" in group.text
        edges = browser.find_elements("css selector", "svg.flow path.edge")
        assert edges and all(e.get_attribute("class") == "edge done" for e in edges)
        assert "13 jobs" in text(browser) and "finished" in text(browser)
        shot(browser, "flow")
        # A box is a link to its job; the job's page shows its parents and its child.
        merge_box = next(b for b in boxes if "merge" in b.text)
        merge_box.click()
        wait_until(lambda: "Parents (11)" in text(browser))
        assert "Children (1)" in text(browser) and "crawl.store" in text(browser)

        # The failed flow: the dead fetch cancelled the merge; the cleanup ran anyway.
        browser.get(f"{url}/flows/{failed.id}")
        statuses = {b.text.split("\n")[0].split(" ", 1)[1]: b.get_attribute("class")
                    for b in browser.find_elements("css selector", "svg.flow a.node")}  # fmt: skip
        assert statuses == {"fetch": statuses["fetch"], "merge": "node s-cancelled",
                            "report": "node s-succeeded"}  # fmt: skip
        assert browser.find_elements("css selector", "svg.flow path.edge.failed")
        assert "ParentFailed: parent job" in text(browser)
        shot(browser, "flow-failed")

        # The waiting chain: its second step says what it waits for.
        browser.get(f"{url}/jobs/{waiting.jobs[1].id}")
        assert (f"blocked: waiting on 1 of its 1 parent job(s) to finish: "
                f"#{waiting.jobs[0].id} crawl.fetch (queued)") in text(browser)
        current = browser.find_element("css selector", "svg.flow a.node.current")
        assert current.get_dom_attribute("href").endswith(f"/jobs/{waiting.jobs[1].id}")
        shot(browser, "job-blocked")
        assert console_errors(browser) == []
