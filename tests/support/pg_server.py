"""A PostgreSQL server of the test's own, to stop, restart and crash at will.

The shared server on 5432 serves everyone and must never be restarted; this one is made with
Debian's binaries (`/usr/lib/postgresql/*/bin`: initdb, pg_ctl) in a temporary directory, on
a free loopback port, trust authentication, and is removed afterwards. PostgreSQL refuses to
run as root, so as root it runs as the `postgres` user, in a directory that user owns.

`own_postgres` is the fixture (a fresh server per test); `PgServer.url` is the SQLAlchemy URL
Firebreak is configured with.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.support.app import free_tcp_port

SERVICE_USER = "postgres"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


@dataclass
class PgServer:
    bin_dir: Path
    root: Path  # holds data/, the socket and the log
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def conninfo(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=60 -c shared_buffers=16MB"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        """`fast`: clients are disconnected, as in a planned restart; `immediate`: a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, *, down_s: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def wait_ready(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                with psycopg.connect(self.conninfo, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def destroy(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[PgServer]:
    """A fresh PostgreSQL of this test's own (skipped where the binaries are missing)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin)")
    root = Path(tempfile.mkdtemp(prefix="firebreak-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SERVICE_USER)
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = PgServer(bin_dir, root, free_tcp_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()
