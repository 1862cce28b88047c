"""A local PostgreSQL for development and tests, driven by initdb and pg_ctl.

With no DSN configured, pgqueue runs against a cluster under ``./.pgqueue/``
(:func:`embedded_dsn`): initialised on first use, started when it is not
running, reused when it is. Its port is kept in ``<datadir>/pgqueue.port``,
so the DSN stays the same from one run to the next. The test-suite drives
:class:`LocalCluster` directly, with ``fast=True`` (fsync off: never for data
you want to keep).

The server binaries come from PATH, then ``/usr/lib/postgresql/*/bin``
(highest version first), then the optional ``pgserver`` wheel.

PostgreSQL refuses to run as root. Under root the data directory belongs to
the ``postgres`` system user (a ``pgqueue`` system user is created when there
is none) and initdb/pg_ctl run through ``runuser``. When that user cannot
reach the data directory (say it sits under ``/root``), the data lives in
``/var/tmp/pgqueue-<hash>`` instead and the data directory is a symlink to it.

The cluster listens on 127.0.0.1 only, trusts every local connection
(``-A trust``) and has no locale (``--no-locale``, UTF-8): a development
server, not a production one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pgqueue._errors import DatabaseUnavailable

__all__ = ["EmbeddedError", "LocalCluster", "embedded_dsn", "find_server_bin"]

PORT_FILE = "pgqueue.port"
LOG_FILE = "pgqueue.log"
PG_CTL_TIMEOUT = 60  # seconds pg_ctl waits for the server to start or stop
SERVICE_USERS = ("postgres", "pgqueue")  # tried in order when running as root
_SOCKET_DIR_MAX = 90  # a Unix socket path must fit in 107 bytes

StopMode = Literal["smart", "fast", "immediate"]


class EmbeddedError(DatabaseUnavailable):
    """The local PostgreSQL could not be found, initialised or started."""


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def _pgserver_bin_dir() -> Path | None:
    """``pgserver/pginstall/bin`` of the optional pgserver wheel, without importing it."""
    try:
        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        return None
    for base in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(base) / "pginstall" / "bin"
        if candidate.is_dir():
            return candidate
    return None


def find_server_bin(name: str) -> str | None:
    """Path of a PostgreSQL server program (``initdb``, ``pg_ctl``), or None."""
    found = shutil.which(name)
    if found:
        return found
    installed = [p for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}") if p.is_file()]
    if installed:
        return str(max(installed, key=lambda p: _version_key(p.parents[1].name)))
    bundled = _pgserver_bin_dir()
    if bundled is not None and (bundled / name).is_file():
        return str(bundled / name)
    return None


def _server_bins() -> tuple[str, str]:
    """``(initdb, pg_ctl)`` from one installation, so their versions match."""
    pg_ctl = find_server_bin("pg_ctl")
    if pg_ctl is None:
        raise EmbeddedError(
            "no PostgreSQL server found (pg_ctl on PATH, /usr/lib/postgresql/*/bin, "
            "or `pip install pgserver`); set PGQUEUE_DSN to use an existing server"
        )
    sibling = Path(pg_ctl).resolve().parent / "initdb"
    initdb = str(sibling) if sibling.is_file() else find_server_bin("initdb")
    if initdb is None:
        raise EmbeddedError(f"initdb not found next to {pg_ctl} nor on PATH")
    return initdb, pg_ctl


def _service_user() -> pwd.struct_passwd | None:
    """The user that runs the server when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in (*SERVICE_USERS, None):
        if name is None:
            subprocess.run(
                ["useradd", "--system", "--user-group", "--no-create-home",
                 "--shell", "/usr/sbin/nologin", SERVICE_USERS[-1]],
                capture_output=True, check=False,
            )  # fmt: skip
            name = SERVICE_USERS[-1]
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise EmbeddedError("running as root and could not create a user to run PostgreSQL")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:  # a pid reused after a reboot is not our postmaster
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc here: trust the pid


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class LocalCluster:
    """One PostgreSQL cluster in ``datadir``, started and stopped with pg_ctl.

    ``port`` defaults to the one the cluster last ran on (``pgqueue.port``),
    else a free one; a cluster already running in ``datadir`` is reused on its
    own port. ``fast=True`` turns off fsync, synchronous commit and full page
    writes (tests).
    """

    def __init__(self, datadir: Path, port: int | None = None, *, fast: bool = False) -> None:
        self.datadir = Path(datadir).absolute()
        self.fast = fast
        self._port = port
        self._user: pwd.struct_passwd | None = None

    def __repr__(self) -> str:
        return f"LocalCluster({str(self.datadir)!r}, port={self._port})"

    # -- state -------------------------------------------------------------

    @property
    def pgdata(self) -> Path:
        """The real data directory (``datadir`` itself, or its symlink's target)."""
        return self.datadir.resolve()

    @property
    def port(self) -> int:
        if self._port is None:
            running = self._pid_file()
            stored = self._stored_port()
            if running is not None:
                self._port = running[1]
            elif stored is not None and _port_free(stored):
                self._port = stored
            else:
                self._port = _free_port()
        return self._port

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_file(self) -> Path:
        return self.pgdata / LOG_FILE

    def is_running(self) -> bool:
        info = self._pid_file()
        return info is not None and _alive(info[0])

    def _pid_file(self) -> tuple[int, int] | None:
        """``(pid, port)`` from ``postmaster.pid``, if there is one."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            return int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None

    def _stored_port(self) -> int | None:
        try:
            return int((self.pgdata / PORT_FILE).read_text().strip())
        except (OSError, ValueError):
            return None

    # -- control -----------------------------------------------------------

    def start(self) -> str:
        """Initialise (first time) and start the cluster, or reuse it; returns the DSN."""
        with self._locked():
            info = self._pid_file()
            if info is not None and _alive(info[0]):
                self._port = info[1]
                return self.dsn
            initdb, _ = _server_bins()
            self._prepare_datadir()
            if not (self.pgdata / "PG_VERSION").is_file():
                self._run([initdb, "-D", str(self.pgdata), "-A", "trust", "-U", "postgres",
                           "--no-sync", "-E", "UTF8", "--no-locale"], "initdb")  # fmt: skip
            port = self.port
            self._pg_ctl("start", "-l", str(self.log_file), "-o", self._server_options(port))
            (self.pgdata / PORT_FILE).write_text(f"{port}\n")
        return self.dsn

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the cluster if it runs; ``immediate`` is a crash (recovery on start)."""
        if self.is_running():
            self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: StopMode = "fast") -> str:
        """Stop and start again on the same port (the DSN does not change)."""
        self.stop(mode)
        return self.start()

    def destroy(self) -> None:
        """Stop the cluster and delete its data."""
        self.stop("immediate")
        pgdata = self.pgdata
        if self.datadir.is_symlink():
            self.datadir.unlink()
        shutil.rmtree(pgdata, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self._lock_path().unlink()

    # -- helpers -----------------------------------------------------------

    def _lock_path(self) -> Path:
        return self.datadir.with_name(f".{self.datadir.name}.lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise start() across processes (two workers starting at once)."""
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path(), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _prepare_datadir(self) -> None:
        self._user = user = _service_user()
        if user is not None and not self.datadir.is_symlink() and not self._reachable(user):
            if self.datadir.exists():
                try:
                    self.datadir.rmdir()  # only an empty leftover
                except OSError:
                    raise EmbeddedError(
                        f"user {user.pw_name!r} (PostgreSQL cannot run as root) "
                        f"cannot reach {self.datadir}"
                    ) from None
            digest = hashlib.sha256(str(self.datadir).encode()).hexdigest()[:16]
            target = Path("/var/tmp") / f"pgqueue-{digest}"
            target.mkdir(mode=0o700, exist_ok=True)
            self.datadir.parent.mkdir(parents=True, exist_ok=True)
            self.datadir.symlink_to(target, target_is_directory=True)
        pgdata = self.pgdata
        pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        if user is not None and pgdata.stat().st_uid != user.pw_uid:
            os.chown(pgdata, user.pw_uid, user.pw_gid)
        pgdata.chmod(0o700)

    def _reachable(self, user: pwd.struct_passwd) -> bool:
        """Can ``user`` get to ``datadir``'s parent (or its first existing ancestor)?"""
        parent = self.datadir.parent
        while not parent.exists():
            parent = parent.parent
        probe = ["runuser", "-u", user.pw_name, "--", "test", "-x", str(parent)]
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0

    def _socket_dir(self) -> str:
        pgdata = str(self.pgdata)
        return pgdata if len(pgdata) <= _SOCKET_DIR_MAX else tempfile.gettempdir()

    def _server_options(self, port: int) -> str:
        settings = ["listen_addresses=127.0.0.1", "max_connections=200"]
        if self.fast:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        opts = ["-p", str(port), "-k", shlex.quote(self._socket_dir())]
        for setting in settings:
            opts += ["-c", setting]
        return " ".join(opts)

    def _pg_ctl(self, *args: str) -> None:
        _, pg_ctl = _server_bins()
        cmd = [pg_ctl, "-D", str(self.pgdata), "-w", "-t", str(PG_CTL_TIMEOUT), *args]
        self._run(cmd, f"pg_ctl {args[0]}")

    def _run(self, cmd: list[str], what: str) -> None:
        if self._user is None and os.geteuid() == 0:
            self._user = _service_user()
        if self._user is not None:
            cmd = ["runuser", "-u", self._user.pw_name, "--", *cmd]
        # A session of its own: Ctrl-C on a worker must not stop a shared server.
        proc = subprocess.run(
            cmd, capture_output=True, text=True, cwd="/", check=False, start_new_session=True
        )
        if proc.returncode != 0:
            lines = (proc.stderr + proc.stdout).strip().splitlines()
            with contextlib.suppress(OSError):
                lines += self.log_file.read_text(errors="replace").strip().splitlines()[-3:]
            detail = lines[-1] if lines else f"exit status {proc.returncode}"
            raise EmbeddedError(f"{what} failed for {self.datadir}: {detail}")


def embedded_dsn(root: Path = Path(".pgqueue")) -> str:
    """Start (or reuse) the development cluster under ``root``; returns its DSN."""
    root = Path(root)
    cluster = LocalCluster(root / "data")
    dsn = cluster.start()
    ignore = root / ".gitignore"
    if not ignore.exists():
        with contextlib.suppress(OSError):
            ignore.write_text("# created by pgqueue: the embedded database\n*\n")
    shown = str(root) if root.is_absolute() else f"./{root.as_posix()}"
    print(f"pgqueue: no DSN configured, using embedded PostgreSQL at {dsn} ({shown})",
          file=sys.stderr)  # fmt: skip
    return dsn
