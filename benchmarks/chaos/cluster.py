"""The harness's own PostgreSQL, and the network namespace of the partition scenario.

:class:`ChaosCluster` is a :class:`~pgqueue._embedded.LocalCluster` with durable
settings (fsync and synchronous commit on: a crash must only lose what PostgreSQL
promises to lose), listening on 127.0.0.1 and, when a :class:`Namespace` exists,
on the host end of its veth pair too.

:class:`Namespace` creates one network namespace and one veth pair in a private
/30 (``10.213.47.0/30`` by default: ``.1`` on the host, ``.2`` inside), and
removes both on :meth:`close` (the runner calls it in a ``finally`` and at exit).
It touches nothing it did not create.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from pgqueue._embedded import LocalCluster

SUBNET = "10.213.47"  # a private /30 of our own: .1 host side, .2 namespace side


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Namespace:
    """One network namespace with a veth pair to the host."""

    def __init__(self, tag: str, subnet: str = SUBNET) -> None:
        self.name = f"pgqchaos{tag}"
        self.host_if = f"pqc{tag}h"[:15]
        self.ns_if = f"pqc{tag}n"[:15]
        self.host_addr = f"{subnet}.1"
        self.ns_addr = f"{subnet}.2"
        self.cidr = f"{subnet}.0/30"
        self.shaping = "none"
        self._created = False

    @staticmethod
    def available() -> str | None:
        """None when network namespaces can be made here, else the reason."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        if shutil.which("ip") is None:
            return "no `ip` command (iproute2)"
        probe = f"pgqprobe{os.getpid()}"
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"ip netns add failed: {made.stderr.strip()}"
        _ip("netns", "del", probe, check=False)
        return None

    def create(self) -> None:
        self._created = True
        atexit.register(self.close)
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        self.run("ip", "addr", "add", f"{self.ns_addr}/30", "dev", self.ns_if)
        self.run("ip", "link", "set", self.ns_if, "up")
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv],
                              capture_output=True, text=True, check=True)  # fmt: skip

    def prefix(self) -> list[str]:
        """The argv prefix that runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def degrade(self, delay_ms: int, loss_pct: float) -> str:
        """Delay and loss on the namespace's link (netem); where the kernel has no
        netem, a token bucket (tbf) slow enough to delay packets stands in.
        Returns what was applied."""
        netem = ["tc", "qdisc", "replace", "dev", self.ns_if, "root", "netem",
                 "delay", f"{delay_ms}ms", "loss", f"{loss_pct}%"]  # fmt: skip
        try:
            self.run(*netem)
            self.shaping = f"netem delay {delay_ms}ms loss {loss_pct}%"
        except subprocess.CalledProcessError:
            tbf = ["tc", "qdisc", "replace", "dev", self.ns_if, "root", "tbf",
                   "rate", "256kbit", "burst", "4kb", "latency", f"{delay_ms * 4}ms"]  # fmt: skip
            try:
                self.run(*tbf)
                self.shaping = "tbf rate 256kbit (no netem in this kernel: no loss)"
            except subprocess.CalledProcessError as exc:
                self.shaping = f"none (tc failed: {exc.stderr.strip()})"
        return self.shaping

    def heal_shaping(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.run("tc", "qdisc", "del", "dev", self.ns_if, "root")

    def cut(self) -> None:
        self.run("ip", "link", "set", self.ns_if, "down")

    def restore(self) -> None:
        self.run("ip", "link", "set", self.ns_if, "up")

    def close(self) -> None:
        """Remove the namespace and the veth pair (idempotent; errors ignored)."""
        if not self._created:
            return
        self._created = False
        pids = _ip("netns", "pids", self.name, check=False).stdout.split()
        for pid in pids:  # processes still inside: only ours can be there
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
        _ip("link", "del", self.host_if, check=False)  # removes its peer too
        _ip("netns", "del", self.name, check=False)


class ChaosCluster(LocalCluster):
    """A LocalCluster with durable settings, also listening on ``extra_addresses``."""

    def __init__(self, datadir: Path, port: int | None = None,
                 extra_addresses: tuple[str, ...] = (), hba_cidrs: tuple[str, ...] = (),
                 max_connections: int = 200) -> None:  # fmt: skip
        super().__init__(datadir, port, fast=False)
        self.extra_addresses = extra_addresses
        self.hba_cidrs = hba_cidrs
        self.max_connections = max_connections

    def _server_options(self, port: int) -> str:
        addresses = ",".join(("127.0.0.1", *self.extra_addresses))
        settings = [f"listen_addresses={addresses}", f"max_connections={self.max_connections}",
                    "superuser_reserved_connections=3"]  # fmt: skip
        opts = ["-p", str(port), "-k", shlex.quote(self._socket_dir())]
        for setting in settings:
            opts += ["-c", shlex.quote(setting)]
        return " ".join(opts)

    def start(self) -> str:
        first = not (self.pgdata / "PG_VERSION").is_file()
        if first and self.hba_cidrs:
            dsn = super().start()
            hba = self.pgdata / "pg_hba.conf"
            with hba.open("a") as fh:
                for cidr in self.hba_cidrs:
                    fh.write(f"host all all {cidr} trust\n")
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("SELECT pg_reload_conf()")
            return dsn
        return super().start()

    def host_dsn(self, host: str, dbname: str) -> str:
        return f"postgresql://postgres@{host}:{self.port}/{dbname}"
