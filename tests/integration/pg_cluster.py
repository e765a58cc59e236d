"""A throwaway PostgreSQL 15 cluster (Debian's `postgresql`), for the hub's tests and bench.

PostgreSQL refuses to run as root, so as root the cluster belongs to user `postgres` (its
directory and every parent must be traversable by it); as another user it is that user's.
`PgCluster(workdir).start()`, then `.dsn`; `.stop()` (fast shutdown) or `.kill()` (SIGKILL).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (with initdb), or None."""
    return next((d for d in PG_BIN_DIRS if (d / "initdb").exists()), None)


def _free_port() -> int:
    for _ in range(50):
        port = random.randrange(20000, 30000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port")


class PgCluster:
    """initdb + pg_ctl in `workdir`, listening on 127.0.0.1 and a free port; trust auth."""

    def __init__(self, workdir: Path, *, user: str = "citygw") -> None:
        binary = pg_bin()
        if binary is None:
            raise FileNotFoundError("PostgreSQL not installed (Debian package 'postgresql')")
        self.bin = binary
        self.workdir = workdir
        self.data = workdir / "db"
        self.log = workdir / "postgres.log"
        self.port = _free_port()
        self.user = user
        self._as_root = os.geteuid() == 0

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout_s: float = 60.0) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed:\n{done.stdout.decode()}{done.stderr.decode()}")

    def start(self) -> None:
        """initdb on the first start, then start and wait until it accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            for parent in self.workdir.parents:
                if parent.stat().st_mode & 0o001 == 0:
                    parent.chmod(parent.stat().st_mode | 0o001)  # traversable by postgres
            shutil.chown(self.workdir, "postgres")
            self.workdir.chmod(0o700)
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "-E", "UTF8")
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=on "
            "-c max_connections=50 -c shared_buffers=64MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")

    def stop(self) -> None:
        """Fast shutdown (connections are closed, the data is kept)."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster: a crash (it recovers from its WAL on the next start)."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
            time.sleep(0.5)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
