"""The dashboard's flow pages over HTTP: the graph as SVG, big flows bounded, the job's
parents and children, why a blocked job waits, the list of flows."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from flow_helpers import Step, big_chord, diamond, sql_flow
from starlette.testclient import TestClient

import pgqueue
from pgqueue._dag import Node, layout
from pgqueue.web import asgi_app
from pgqueue.web._graph import flow_svg, short_task

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def client(clean_db: str) -> Iterator[TestClient]:
    app = pgqueue.App(clean_db)
    with TestClient(asgi_app(app)) as c:
        yield c
    app.close()



def svg_of(html: str) -> ET.Element:
    match = re.search(r'<svg class="flow".*?</svg>', html, re.S)
    assert match, "the page has a flow graph"
    return ET.fromstring(match.group(0))  # well-formed XML, or this raises


NS = "{http://www.w3.org/2000/svg}"


def boxes(svg: ET.Element) -> list[tuple[str, str]]:
    """(href, classes) of every box."""
    return [(a.get("href", ""), a.get("class", "")) for a in svg.iter("a")]


def test_the_flow_page_draws_every_job_and_edge(client: TestClient, clean_db: str) -> None:
    ids = diamond(clean_db)
    page = client.get(f"/flows/{ids[0]}")
    assert page.status_code == 200
    svg = svg_of(page.text)
    assert sorted(href for href, _ in boxes(svg)) == sorted(f"/jobs/{i}" for i in ids)
    assert (f"/jobs/{ids[1]}", "node s-running") in boxes(svg)
    edges = [p for p in svg.iter("path") if "edge" in (p.get("class") or "")]
    assert len(edges) == 3 + 2
    assert sorted(e.get("class") for e in edges) == ["edge done", "edge wait", "edge wait",
                                                     "edge wait", "edge wait"]  # fmt: skip
    # The table lists the jobs with their parents; the counts link to a filter.
    assert f'<a href="/jobs/{ids[0]}">{ids[0]}</a>, <a href="/jobs/{ids[1]}">' in page.text
    assert f'href="/flows/{ids[0]}?status=blocked#jobs"' in page.text
    assert "Layers 1 to 3 of 3." in page.text and "folded" not in page.text
    assert 'hx-trigger="every 5s"' in page.text  # unfinished: it refreshes itself
    blocked = client.get(f"/flows/{ids[0]}?status=blocked")
    rows = re.findall(r'<td class="n"><a href="/jobs/(\d+)">', blocked.text)
    assert [int(r) for r in rows] == ids[3:]


def test_a_ten_thousand_job_chord_is_folded_and_paged(client: TestClient, clean_db: str) -> None:
    ids = big_chord(clean_db, 10_000)
    page = client.get(f"/flows/{ids[0]}")
    assert page.status_code == 200
    svg = svg_of(page.text)
    drawn = boxes(svg)
    assert len(drawn) == 9  # 7 jobs and a group in the first layer, the callback
    assert sum("group" in c for _, c in drawn) == 1
    assert "+9,993 x fetch" in page.text and "9,993 jobs are folded into group boxes" in page.text
    assert len(re.findall(r'<td class="n"><a href="/jobs/', page.text)) == 50
    nxt = re.search(r'href="(/flows/\d+\?[^"]*after=\d+[^"]*)" rel="next"', page.text)
    assert nxt
    second = client.get(nxt.group(1).replace("&amp;", "&"))
    first_id = int(re.findall(r'<td class="n"><a href="/jobs/(\d+)">', second.text)[0])
    assert first_id == ids[50]
    assert len(page.content) < 200_000  # the graph is bounded, not 10,000 boxes


def test_a_long_chain_is_drawn_a_window_of_layers_at_a_time(
    client: TestClient, clean_db: str
) -> None:
    ids = sql_flow(clean_db, [Step("t.step", "succeeded", (i - 1,) if i else ())
                              for i in range(70)])  # fmt: skip
    page = client.get(f"/flows/{ids[0]}")
    assert "Layers 1 to 30 of 70 (at most 30 drawn at once)." in page.text
    assert len(boxes(svg_of(page.text))) == 30
    later = re.search(r'href="([^"]+)">Later layers', page.text)
    assert later
    page = client.get(later.group(1).replace("&amp;", "&"))
    assert "Layers 31 to 60 of 70" in page.text and "Earlier layers" in page.text
    assert f"/jobs/{ids[30]}" in page.text and "1 above" in page.text
    last = client.get(f"/flows/{ids[0]}?layer=999")
    assert "Layers 70 to 70 of 70" in last.text and 'hx-trigger' not in last.text  # finished


def test_the_job_page_shows_parents_children_and_why_a_blocked_job_waits(
    client: TestClient, clean_db: str
) -> None:
    ids = diamond(clean_db)
    page = client.get(f"/jobs/{ids[3]}")
    assert page.status_code == 200
    text = page.text
    assert (f"blocked: waiting on 2 of its 3 parent job(s) to finish: #{ids[1]} app.fetch "
            f"(running), #{ids[2]} app.fetch (queued)") in text
    assert "if one ends dead or cancelled, this job is cancelled" in text
    assert f'Part of <a href="/flows/{ids[0]}">flow {ids[0]}</a>' in text
    for i in (*ids[:3], *ids[4:]):
        assert f'<a href="/jobs/{i}">#{i}</a>' in text
    svg = svg_of(text)
    assert (f"/jobs/{ids[3]}", "node s-blocked current") in boxes(svg)
    cleanup = client.get(f"/jobs/{ids[5]}").text
    assert "even if one fails (on_parent_failure=&#39;run&#39;)" in cleanup
    assert "on a parent's failure: runs anyway" in cleanup


def test_a_callback_with_many_parents_lists_a_few_and_counts_them_all(
    client: TestClient, clean_db: str
) -> None:
    ids = big_chord(clean_db, 2000)
    text = client.get(f"/jobs/{ids[-1]}").text
    assert "Parents (2,000)" in text and "The first 12 shown" in text
    assert "+1,993 x fetch" in text  # the group box stands for the parents not drawn


def test_the_list_of_flows_pages_by_id(client: TestClient, clean_db: str) -> None:
    assert "No flow." in client.get("/flows").text
    firsts = [sql_flow(clean_db, [Step("t.a", "succeeded")])[0] for _ in range(27)]
    page = client.get("/flows")
    listed = [int(i) for i in re.findall(r'<a href="/flows/(\d+)">', page.text)]
    assert listed == firsts[::-1][:25]
    older = re.search(r'href="/flows\?before=(\d+)" rel="next"', page.text)
    assert older and int(older.group(1)) == firsts[2]
    rest = client.get(f"/flows?before={older.group(1)}").text
    assert [int(i) for i in re.findall(r'<a href="/flows/(\d+)">', rest)] == firsts[1::-1]


def test_bad_requests(client: TestClient, clean_db: str) -> None:
    ids = diamond(clean_db)
    assert client.get("/flows/999").status_code == 404
    assert client.get(f"/flows/{ids[1]}").status_code == 404  # a job, not a flow
    assert client.get(f"/flows/{ids[0]}?status=lost").status_code == 400
    assert client.get(f"/flows/{ids[0]}?layer=x").status_code == 400
    assert client.get("/flows?before=-3").status_code == 400


def test_task_names_are_escaped_in_the_svg() -> None:
    nodes = [Node(1, "<script>alert(1)</script>", "queued"), Node(2, 'a"b&c', "blocked", (1,))]
    svg = flow_svg(layout(nodes), job_href="/jobs/{id}", group_href="/g", title="t<")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "t&lt;" in svg
    ET.fromstring(svg)
    assert short_task("myapp.tasks.fetch") == "fetch"
    assert short_task("x" * 40, 10) == "x" * 9 + "…"


def test_cancel_a_flow_from_its_page(client: TestClient, clean_db: str) -> None:
    from test_web import token

    ids = diamond(clean_db)
    csrf = token(client, f"/flows/{ids[0]}")
    form = {"csrf": csrf, "flow": str(ids[0]), "action": "cancel", "next": f"/flows/{ids[0]}"}
    page = client.post("/actions/flows", data=form)
    assert page.status_code == 200  # followed the redirect back to the flow
    assert "cancelled 4 job(s), asked workers to stop 1 running job(s)" in page.text
    statuses = dict(pgqueue.App(clean_db).flow_graph(ids[0]).counts)
    assert statuses == {"running": 1, "cancelled": 4, "succeeded": 1}
    assert "Cancel the flow" in page.text  # the running one has not stopped yet
    unknown = client.post("/actions/flows", data={"csrf": csrf, "flow": "999", "action": "cancel"})
    assert "error: no flow with id 999" in unknown.text


def test_a_read_only_dashboard_offers_no_flow_action(clean_db: str) -> None:
    ids = diamond(clean_db)
    app = pgqueue.App(clean_db)
    with TestClient(asgi_app(app, read_only=True)) as c:
        assert "Cancel the flow" not in c.get(f"/flows/{ids[0]}").text
        assert c.post("/actions/flows", data={"flow": str(ids[0]),
                                              "action": "cancel"}).status_code == 403  # fmt: skip
    app.close()
