"""Which process runs the persistent job store: the one holding the scheduler lock.

One APScheduler job store must never be shared by two schedulers, so only one process per
database runs it. PostgreSQL: a session-level `pg_try_advisory_lock` on a dedicated
connection, released by the server when the process dies. SQLite: an `flock` on
`<db>.scheduler-lock`, released by the kernel. In-memory SQLite is one process by definition.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from typing import Any

import structlog
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from firebreak.store.db import is_memory_sqlite, sync_url
from firebreak.store.scheduling import ping, try_advisory_lock, unlock_advisory

log = structlog.get_logger(__name__)

LOCK_KEY = int.from_bytes(hashlib.sha256(b"firebreak.scheduler").digest()[:8], "big", signed=True)


class Lock:
    def acquire(self) -> bool:
        raise NotImplementedError

    def alive(self) -> bool:
        return True

    def release(self) -> None:
        return None


class _NoLock(Lock):
    def acquire(self) -> bool:
        return True


class _FileLock(Lock):
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class _AdvisoryLock(Lock):
    def __init__(self, url: str) -> None:
        self.engine = create_engine(sync_url(url), poolclass=NullPool)
        self.conn: Any = None

    def acquire(self) -> bool:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = try_advisory_lock(conn, LOCK_KEY)
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self.conn = conn
        return True

    def alive(self) -> bool:
        try:
            ping(self.conn)
            return True
        except Exception:
            log.warning("scheduler lock connection lost")
            return False

    def release(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                unlock_advisory(self.conn, LOCK_KEY)
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
        self.engine.dispose()


def leader_lock(url: str) -> Lock:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return _AdvisoryLock(url)
    if is_memory_sqlite(url):
        return _NoLock()
    return _FileLock(os.path.abspath(parsed.database or "") + ".scheduler-lock")
