"""The server, the databases the suite creates, machine facts, statistics snapshots."""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from benchmarks._db import DEFAULT_SERVER, _with_db
from pgqueue._migrate import migrate_dsn

PREFIX = "pgqueue_bench"


def _reachable(dsn: str) -> bool:
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


@contextlib.contextmanager
def bench_server(dsn: str | None = None) -> Iterator[tuple[str, str]]:
    """``(maintenance DSN, how it was found)``: ``dsn``, ``$PGQUEUE_BENCH_DSN``, the
    local server, else a throwaway cluster (durable settings) removed afterwards."""
    named = dsn or os.environ.get("PGQUEUE_BENCH_DSN")
    if named:
        yield named, "named server"
        return
    if _reachable(DEFAULT_SERVER):
        yield DEFAULT_SERVER, "local server 127.0.0.1:5432"
        return
    from pgqueue._embedded import LocalCluster

    root = Path(tempfile.mkdtemp(prefix="pgqueue-bench-server-"))
    root.chmod(0o755)
    cluster = LocalCluster(root / "data")
    try:
        yield cluster.start(), "throwaway cluster started for this run (fsync on)"
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


class Databases:
    """Creates databases on one server and drops them all at the end."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.names: list[str] = []

    def create(self, label: str, *, migrate: bool = True) -> str:
        name = f"{PREFIX}_{label}_{secrets.token_hex(3)}"
        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.names.append(name)
        dsn = _with_db(self.server, name)
        if migrate:
            migrate_dsn(dsn)
        return dsn

    def drop(self, dsn: str) -> None:
        name = dsn.rsplit("/", 1)[-1].split("?")[0]
        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if name in self.names:
            self.names.remove(name)

    def drop_all(self) -> None:
        for name in list(self.names):
            with contextlib.suppress(psycopg.Error):
                self.drop(_with_db(self.server, name))


Target = str | psycopg.Connection[Any]  # a DSN (a connection for this call) or an open one


def execute(target: Target, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    if not isinstance(target, str):
        cur = target.execute(statement, params)
        return cur.fetchall() if cur.description else []
    with psycopg.connect(target, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def vacuum(dsn: str, table: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {table}")


def server_now(dsn: str) -> Any:
    return execute(dsn, "SELECT clock_timestamp()")[0][0]


# -- machine facts -------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


SETTINGS = (
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "wal_level",
    "max_connections",
    "work_mem",
    "shared_preload_libraries",
)


def machine(server: str, how: str) -> dict[str, Any]:
    with psycopg.connect(server, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        settings = {
            name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            for name in SETTINGS
        }
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "psycopg": psycopg.__version__,
        "postgresql": version[0] if version else "unknown",
        "server": how,
        "settings": {k: (v[0] if v else None) for k, v in settings.items()},
        "loadavg_start": list(os.getloadavg()),
    }


# -- statistics snapshots (pg_stat_* deltas) --------------------------------------

TABLE_STATS = """
SELECT coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_hot_upd), 0),
       coalesce(sum(n_tup_del), 0), coalesce(sum(seq_scan), 0), coalesce(sum(idx_scan), 0),
       coalesce(sum(n_dead_tup), 0)
FROM pg_stat_user_tables WHERE schemaname = %s AND relname = %s
"""
DB_STATS = """
SELECT xact_commit, xact_rollback, blks_read, blks_hit, tup_returned, tup_fetched,
       tup_inserted, tup_updated, tup_deleted
FROM pg_stat_database WHERE datname = current_database()
"""
WAL_STATS = "SELECT wal_records, wal_fpi, wal_bytes::float8 FROM pg_stat_wal"
TABLE_KEYS = ("tup_ins", "tup_upd", "tup_hot_upd", "tup_del", "seq_scan", "idx_scan", "dead_tup")
DB_KEYS = (
    "xact_commit",
    "xact_rollback",
    "blks_read",
    "blks_hit",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
)
WAL_KEYS = ("wal_records", "wal_fpi", "wal_bytes")


def snapshot(dsn: str, schema: str, table: str) -> dict[str, float]:
    """Cumulative counters; subtract two snapshots for a run's delta."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        out: dict[str, float] = {}
        row = conn.execute(TABLE_STATS, (schema, table)).fetchone() or ()
        out.update({f"table.{k}": float(v) for k, v in zip(TABLE_KEYS, row, strict=False)})
        row = conn.execute(DB_STATS).fetchone() or ()
        out.update({f"db.{k}": float(v) for k, v in zip(DB_KEYS, row, strict=False)})
        with contextlib.suppress(psycopg.Error):
            row = conn.execute(WAL_STATS).fetchone() or ()
            out.update({f"wal.{k}": float(v) for k, v in zip(WAL_KEYS, row, strict=False)})
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after if not k.endswith("dead_tup")} | {
        k: after[k] for k in after if k.endswith("dead_tup")
    }
