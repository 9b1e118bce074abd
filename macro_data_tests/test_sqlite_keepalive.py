"""Idle SQLite connections: a WAL database's log survives the writers' closes, and the idle
connection blocks neither writers nor checkpoints (real SQLite files)."""

from __future__ import annotations

import sqlite3
import threading

from macro_data.sqlite_keepalive import IdleConnections


def _wal_db(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE events (body TEXT)")
    conn.commit()
    conn.close()
    return path


def _write_once(path, body="x"):
    """What Dagster's SQLite storage does per event: a new connection, one insert, commit, close."""
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO events VALUES (?)", (body,))
    conn.commit()
    conn.close()


def _log(path):
    return path.with_name(path.name + "-wal")


def test_a_held_database_keeps_its_log_between_writers(tmp_path):
    db = _wal_db(tmp_path / "events.db")
    _write_once(db)
    assert not _log(db).exists()  # the last connection checkpointed and deleted the log
    with IdleConnections() as keep:
        assert keep.hold(db) and keep.held(db)
        for i in range(5):
            _write_once(db, str(i))
            assert _log(db).exists()  # no writer was the last connection
        keep.release(db)
        assert not keep.held(db) and not _log(db).exists()  # now the idle one was: checkpoint, delete
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 6  # nothing lost
    conn.close()


def test_the_idle_connection_blocks_neither_writers_nor_checkpoints(tmp_path):
    db = _wal_db(tmp_path / "events.db")
    with IdleConnections() as keep:
        assert keep.hold(db)
        writer = sqlite3.connect(db, timeout=0)  # any lock held by the idle connection would fail at once
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute("INSERT INTO events VALUES ('x')")
        writer.commit()
        busy, log_pages, done = writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0 and log_pages == done == 0  # the whole log was checkpointed and truncated
        writer.close()


def test_only_existing_wal_databases_are_held(tmp_path):
    rollback = tmp_path / "rollback.db"
    conn = sqlite3.connect(rollback)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_bytes(b"not SQLite at all, " * 10)
    with IdleConnections() as keep:
        assert not keep.hold(tmp_path / "missing.db")
        assert not (tmp_path / "missing.db").exists()  # never created
        assert not keep.hold(tmp_path)  # a folder
        assert not keep.hold(rollback)  # nothing to keep: no log
        assert not keep.hold(not_a_database)
        assert not_a_database.read_bytes() == b"not SQLite at all, " * 10
        assert not any(keep.held(p) for p in (rollback, not_a_database))


def test_holding_from_several_threads_opens_one_connection(tmp_path):
    db = _wal_db(tmp_path / "events.db")
    keep = IdleConnections()
    results = []
    threads = [threading.Thread(target=lambda: results.append(keep.hold(db))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 8
    keep.release(db)  # one release closes it: the log goes with it
    _write_once(db)
    assert not _log(db).exists()
    keep.close()
