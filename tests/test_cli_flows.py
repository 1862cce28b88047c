"""``pgqueue jobs show`` (the graph around a job) and ``pgqueue flows show|list``."""

from __future__ import annotations

import json

import pytest
from flow_helpers import Step, big_chord, sql_flow
from test_cli_admin import cli


def diamond(dsn: str) -> list[int]:
    return sql_flow(dsn, [
        Step("app.fetch", "succeeded"), Step("app.fetch", "running"), Step("app.fetch", "queued"),
        Step("app.merge", "blocked", (0, 1, 2)), Step("app.store", "blocked", (3,)),
    ])  # fmt: skip


def test_jobs_show_prints_the_graph_around_a_job(
    clean_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = diamond(clean_db)
    code, out, _ = cli(capsys, "jobs", "show", str(ids[3]), "--dsn", clean_db)
    assert code == 0
    graph = out[out.index("graph (flow"):].splitlines()
    assert graph == [
        f"graph (flow {ids[0]}; the whole flow: pgqueue flows show {ids[0]})",
        "  parents: 3 (1 running, 1 queued, 1 succeeded)",
        f"    |-- {ids[0]}  app.fetch  succeeded",
        f"    |-- {ids[1]}  app.fetch  running",
        f"    `-- {ids[2]}  app.fetch  queued",
        f"  * {ids[3]}  app.merge  blocked: waiting on 2 of 3 parent(s): {ids[1]} (running),"
        f" {ids[2]} (queued)",
        "  children: 1 (1 blocked)",
        f"    `-- {ids[4]}  app.store  blocked",
    ]
    code, out, _ = cli(capsys, "jobs", "show", str(ids[3]), "--json", "--dsn", clean_db)
    shown = json.loads(out)
    assert shown["flow_id"] == ids[0] and shown["parent_ids"] == ids[:3]
    assert [p["id"] for p in shown["graph"]["parents"]] == ids[:3]
    assert shown["graph"]["child_counts"] == {"blocked": 1}


def test_jobs_show_caps_the_lists_and_a_plain_job_has_no_graph(
    clean_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = big_chord(clean_db, 500)
    code, out, _ = cli(capsys, "jobs", "show", str(ids[-1]), "--graph-limit", "3",
                       "--dsn", clean_db)  # fmt: skip
    assert code == 0 and "  parents: 500 (500 succeeded)" in out
    assert "    `-- ... 497 more" in out and out.count("app.fetch  succeeded") == 3
    code, out, _ = cli(capsys, "enqueue", "t.alone", "--json", "--dsn", clean_db)
    alone = json.loads(out)["id"]
    code, out, _ = cli(capsys, "jobs", "show", str(alone), "--dsn", clean_db)
    assert code == 0 and "graph" not in out
    code, out, _ = cli(capsys, "jobs", "show", str(alone), "--json", "--dsn", clean_db)
    assert "graph" not in json.loads(out)


def test_flows_show_prints_layers_with_edges_and_folds_a_wide_layer(
    clean_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = diamond(clean_db)
    code, out, _ = cli(capsys, "flows", "show", str(ids[0]), "--dsn", clean_db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"flow {ids[0]}: 5 jobs (1 running, 1 queued, 2 blocked, "
                               "1 succeeded); created ")  # fmt: skip
    assert lines[1:] == [
        "layer 1 (3 jobs)",
        f"  {ids[0]}  app.fetch  succeeded", f"  {ids[1]}  app.fetch  running",
        f"  {ids[2]}  app.fetch  queued",
        "layer 2 (1 job)", f"  {ids[3]}  app.merge  blocked  <- {ids[0]}, {ids[1]}, {ids[2]}",
        "layer 3 (1 job)", f"  {ids[4]}  app.store  blocked  <- {ids[3]}",
    ]  # fmt: skip
    chord = big_chord(clean_db, 1000)
    code, out, _ = cli(capsys, "flows", "show", str(chord[0]), "--dsn", clean_db)
    assert "layer 1 (1,000 jobs)" in out
    assert "  ... 991 more (991 succeeded; --per-layer to see more)" in out
    assert f"  {chord[-1]}  app.merge  queued  <- {chord[0]}, " in out and "(+995 more)" in out
    code, out, _ = cli(capsys, "flows", "show", str(chord[0]), "--all", "--dsn", clean_db)
    assert out.count("app.fetch  succeeded") == 1000
    code, out, _ = cli(capsys, "flows", "show", str(chord[0]), "--json", "--dsn", clean_db)
    data = json.loads(out)
    assert data["total"] == 1001 and data["complete"] and len(data["jobs"]) == 1001
    assert data["jobs"][-1]["parent_ids"] == chord[:-1]


def test_flows_list(clean_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "flows", "list", "--dsn", clean_db)
    assert code == 0 and out == "no flows\n"
    a = diamond(clean_db)
    b = sql_flow(clean_db, [Step("t.a", "succeeded"), Step("t.b", "succeeded", (0,))])
    code, out, _ = cli(capsys, "flows", "list", "--dsn", clean_db)
    rows = out.splitlines()
    assert rows[0].split() == ["flow", "jobs", "statuses", "created_at", "finished_at"]
    assert rows[1].startswith(f"{b[0]} ") and "2 succeeded" in rows[1]
    assert rows[2].startswith(f"{a[0]} ") and "1 running, 1 queued, 2 blocked" in rows[2]
    code, out, _ = cli(capsys, "flows", "list", "--before", str(b[0]), "--json", "--dsn", clean_db)
    (only,) = json.loads(out)
    assert only["id"] == a[0] and only["total"] == 5 and only["finished_at"] is None


@pytest.mark.parametrize("argv, message", [
    (["flows", "show", "999"], "no flow with id 999"),
    (["flows", "show", "1", "--per-layer", "1"], "--per-layer must be at least 2"),
    (["flows", "list", "--limit", "0"], "limit must be a positive int"),
    (["jobs", "show", "1", "--graph-limit", "0"], "--graph-limit must be at least 1"),
])  # fmt: skip
def test_mistakes_are_one_line(
    clean_db: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = cli(capsys, *argv, "--dsn", clean_db)
    assert code != 0 and message in err and err.count("\n") == 1


def test_control_characters_in_task_names_are_escaped(
    clean_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = sql_flow(clean_db, [Step("evil\x1b]0;owned\x07", "succeeded"),
                              Step("t.b", "blocked", (0,))])  # fmt: skip
    for argv in (["flows", "show", str(ids[0])], ["jobs", "show", str(ids[1])]):
        code, out, _ = cli(capsys, *argv, "--dsn", clean_db)
        assert code == 0 and "\x1b" not in out and "\\x1b]0;owned\\x07" in out
