"""The package's layers point down only, read from the imports (``TYPE_CHECKING`` ones too).

core <- ports (database, registry) <- operations <- runtime <- App facade
<- integrations (web, contrib, otel, testing) <- CLI. A module may import its own
layer or any layer below it, never one above.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import pgqueue
from pgqueue import _keys

ROOT = Path(pgqueue.__file__).parent

# Layer of each module, by dotted name prefix (the longest match wins).
LAYERS: dict[str, int] = {
    # core: no I/O policy, no knowledge of anything above
    "pgqueue._errors": 0, "pgqueue._core": 0, "pgqueue._cron": 0, "pgqueue._job": 0,
    "pgqueue._sql": 0, "pgqueue.sql": 0, "pgqueue._keys": 0, "pgqueue._schedule": 0,
    "pgqueue._protocols": 0, "pgqueue._spec": 0, "pgqueue._config": 0, "pgqueue._task": 0,
    "pgqueue._dsn": 0, "pgqueue._hooks": 0, "pgqueue._canvas": 0, "pgqueue._dag": 0,
    "pgqueue._workflow": 0,
    # ports
    "pgqueue._db": 1, "pgqueue._checkout": 1, "pgqueue._connection": 1, "pgqueue._registry": 1,
    "pgqueue._embedded": 1, "pgqueue._migrate": 1, "pgqueue.migrate": 1,
    "pgqueue._testdb": 1,
    # operations
    "pgqueue._client": 2, "pgqueue._lean": 2, "pgqueue._bulk": 2, "pgqueue._admin": 2,
    "pgqueue._queues": 2,
    "pgqueue._schedules": 2, "pgqueue._inspect": 2, "pgqueue._wait": 2, "pgqueue._context": 2,
    "pgqueue._eager": 2, "pgqueue._linked": 2, "pgqueue._flows": 2,
    "pgqueue._enqueue": 2, "pgqueue._workflows": 2, "pgqueue._replay": 2, "pgqueue._graph": 2,
    # runtime
    "pgqueue.worker": 3, "pgqueue.maintenance": 3, "pgqueue.metrics": 3,
    # the facade, and what is built on it
    "pgqueue._app": 4, "pgqueue._app_workflows": 4, "pgqueue._app_graph": 4, "pgqueue": 4,
    "pgqueue._demo": 5,
    # the command line: over the public API, integrations included (`pgqueue web`)
    "pgqueue.cli": 7, "pgqueue.__main__": 7,
}  # fmt: skip
# Optional integrations (web, contrib, otel, testing): on top of the public API.
TOP = 6
# Matched as a whole name only: the package's __init__, not everything under it.
EXACT = {"pgqueue"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(name: str) -> int:
    best = ""
    for prefix in LAYERS:
        nested = prefix not in EXACT and name.startswith(prefix + ".")
        if (name == prefix or nested) and len(prefix) > len(best):
            best = prefix
    return LAYERS[best] if best else TOP


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        yield module_name(path), path


def imports(path: Path, name: str) -> Iterator[str]:
    """Every pgqueue module ``path`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("pgqueue"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base]) if base else ".".join(up)
            if not base.startswith("pgqueue"):
                continue
            if base == "pgqueue":  # `from pgqueue import _admin` names modules
                for alias in node.names:
                    sub = f"pgqueue.{alias.name}"
                    yield sub if (ROOT / f"{alias.name}.py").exists() or (
                        ROOT / alias.name).is_dir() else "pgqueue"  # fmt: skip
            else:
                yield base


def test_every_module_has_a_layer_or_is_an_integration() -> None:
    names = [n for n, _ in modules()]
    assert "pgqueue._db" in names and "pgqueue._registry" in names
    unplaced = [n for n in names if layer_of(n) == TOP and n not in LAYERS]
    assert "pgqueue.web" in unplaced and "pgqueue.otel" in unplaced
    # Only integrations (web, contrib, otel, testing...) may sit above the CLI.
    assert all(not n.startswith(("pgqueue._", "pgqueue.worker", "pgqueue.maintenance"))
               for n in unplaced), unplaced  # fmt: skip


@pytest.mark.parametrize("name,path", list(modules()), ids=lambda v: str(v))
def test_imports_point_down(name: str, path: Path) -> None:
    own = layer_of(name)
    upward = [(dep, layer_of(dep)) for dep in imports(path, name)
              if layer_of(dep) > own and not dep.startswith(name)]  # fmt: skip
    assert upward == [], f"{name} (layer {own}) imports higher layers: {upward}"


def test_only_the_facade_front_imports_app() -> None:
    allowed = {"pgqueue", "pgqueue._app", "pgqueue._demo"}
    offenders = [
        name for name, path in modules()
        if "pgqueue._app" in set(imports(path, name))
        and name not in allowed and not name.startswith("pgqueue.cli")
    ]  # fmt: skip
    assert offenders == []


def test_connections_are_opened_by_the_port_only() -> None:
    allowed = {"pgqueue._db", "pgqueue._migrate", "pgqueue._embedded"}
    found = []
    for name, path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "connect":
                owner = ast.unparse(node.value)
                if owner in ("psycopg", "psycopg.AsyncConnection", "AsyncConnection",
                             "psycopg.Connection"):  # fmt: skip
                    found.append(name)
    assert found and set(found) <= allowed, found


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    # The checker itself must be able to fail: a core module importing the facade.
    fake = ROOT / "_core.py"
    tree_imports = set(imports(fake, "pgqueue._core"))
    assert all(layer_of(d) == 0 for d in tree_imports)
    bad = tmp_path / "pgqueue" / "_errors.py"
    bad.parent.mkdir()
    bad.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                   "    from pgqueue._app import App\n")  # fmt: skip
    assert list(imports(bad, "pgqueue._errors")) == ["pgqueue._app"]
    assert layer_of("pgqueue._app") > layer_of("pgqueue._errors")


def test_sql_names_the_channels_of_the_keys_table() -> None:
    text = "".join(p.read_text() for p in (ROOT / "sql").glob("*.sql"))
    channels = {v for k, v in vars(_keys).items() if k.endswith("_CHANNEL")}
    for channel in channels:
        assert f"'{channel}'" in text, channel
    named = {part.split("'")[1] for part in text.split("pg_notify(")[1:]}
    assert named <= channels, named - channels
    keys = list(_keys.LOCK_KEYS.values())
    assert len(set(keys)) == len(keys)
