"""Idle connections that keep SQLite's write-ahead log between the connections that write.

Dagster's default instance keeps runs, the event index and each run's events in SQLite databases in
WAL mode, and opens a new connection for every event it writes (no pool). When the last connection
to a WAL database closes, SQLite checkpoints the log into the database, syncs it, and deletes the
log and its shared-memory index; the next event creates them again. A world run writes about 70
events, so a default build (6 x 10,000 samples) paid about 2,600 extra syncs and 1,300 deletions
of a log (each with its shared-memory file) for it, about 0.9 s of its 12 s.

A process that writes many events keeps one idle connection to each database open
(:class:`IdleConnections`): the writing connections are then never the last to close, so their
commits only append to the log, each still synced (durability is unchanged), and SQLite checkpoints
the log when it reaches its automatic threshold (1,000 pages) instead of after every event.

An idle connection never holds a transaction: it runs in autocommit mode and its one read, which
attaches it to the log's shared-memory index, is finished before :meth:`IdleConnections.hold`
returns. It blocks neither writers nor checkpoints, and it never creates or writes a database.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

# Seconds an idle connection's one read may wait for a lock (a database being created in rollback
# mode by another process): a database not held in time is only slower, never wrong.
BUSY_TIMEOUT = 0.5


class IdleConnections:
    """Idle connections to SQLite databases in WAL mode, by path; safe across threads.

    A database that does not exist, is not in WAL mode, or cannot be read is not held
    (:meth:`hold` returns False): holding it would gain nothing, and the code that writes it
    reports its own errors.
    """

    def __init__(self) -> None:
        self._open: dict[Path, sqlite3.Connection] = {}
        self._lock = threading.Lock()

    def hold(self, path: str | Path) -> bool:
        """Open an idle connection to the WAL database at ``path`` (kept until :meth:`release`);
        whether it is held."""
        path = Path(path).absolute()
        with self._lock:
            if path in self._open:
                return True
        if not path.is_file():
            return False
        try:
            # mode=rw: never create a database that is not there
            uri = f"{path.as_uri()}?mode=rw"
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return False
        try:
            wal = conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
            if wal:  # a read attaches the connection to the log's shared-memory index
                conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except sqlite3.Error:
            wal = False
        if not wal:
            conn.close()
            return False
        with self._lock:
            if path in self._open:  # held by another thread meanwhile
                conn.close()
            else:
                self._open[path] = conn
        return True

    def held(self, path: str | Path) -> bool:
        """Whether the database at ``path`` is held."""
        with self._lock:
            return Path(path).absolute() in self._open

    def release(self, path: str | Path) -> None:
        """Close the idle connection to ``path``, if held. When it was the database's last connection,
        SQLite checkpoints the log and deletes it, as it would have without this module."""
        with self._lock:
            conn = self._open.pop(Path(path).absolute(), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Release every database held."""
        with self._lock:
            conns, self._open = list(self._open.values()), {}
        for conn in conns:
            conn.close()

    def __enter__(self) -> IdleConnections:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
