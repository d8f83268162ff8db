"""Group commit (bulkmeet.journal_commit) on a real SQLite file: writes queued while another
thread commits share one transaction, each caller returns once its own write is committed, and
a write that fails in a shared transaction fails alone."""
from __future__ import annotations

import os
import signal
import sqlite3
import threading
from pathlib import Path

import pytest

from bulkmeet.journal_commit import GroupCommit, JournalClosed

INSERT = "INSERT INTO t (k, v) VALUES (?, ?)"


class Db:
    """A real connection shared the way the journal shares it, with SQLite's own statement trace
    (``set_trace_callback``) to see which transactions ran."""

    def __init__(self, path: Path) -> None:
        self.conn: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        self.trace: list[str] = []
        self.conn.set_trace_callback(self.trace.append)
        self.lock = threading.Lock()
        self.commits = GroupCommit(self.lock, lambda: self.conn)

    def rows(self) -> dict[str, str]:
        assert self.conn is not None
        return dict(self.conn.execute("SELECT k, v FROM t").fetchall())


@pytest.fixture
def db(tmp_path: Path) -> Db:
    return Db(tmp_path / "j.sqlite")


def _queued_behind_a_held_lock(db: Db, writes: list[tuple[str, str | None]]
                               ) -> dict[str, BaseException | int]:
    """The first write leads and waits for the connection lock (held here) while the others
    queue behind it; then the lock is let go. Each write's row id or error, by key."""
    outcome: dict[str, BaseException | int] = {}

    def write(k: str, v: str | None) -> None:
        try:
            outcome[k] = db.commits.write([(INSERT, (k, v)), (INSERT, (k + "-twin", v))])
        except (sqlite3.Error, JournalClosed) as exc:
            outcome[k] = exc

    threads = [threading.Thread(target=write, args=kv) for kv in writes]
    with db.lock:
        threads[0].start()
        while db.commits._queue or not db.commits._leading:  # until the leader took its own
            threading.Event().wait(0.001)
        for th in threads[1:]:
            th.start()
        while len(db.commits._queue) < len(threads) - 1:
            threading.Event().wait(0.001)
    for th in threads:
        th.join(timeout=30)
    assert not any(th.is_alive() for th in threads)
    return outcome


def test_a_thread_alone_commits_at_once_and_gets_its_row_id(db: Db) -> None:
    assert db.commits.write([(INSERT, ("a", "1"))]) == 1
    assert db.commits.write([(INSERT, ("b", "2")), (INSERT, ("c", "3"))]) == 3
    assert db.rows() == {"a": "1", "b": "2", "c": "3"}
    assert [s for s in db.trace if s in ("BEGIN IMMEDIATE", "COMMIT")] == [
        "BEGIN IMMEDIATE", "COMMIT"]  # one statement is its own transaction


def test_writes_queued_meanwhile_share_one_transaction(db: Db) -> None:
    writes = [(f"k{i}", str(i)) for i in range(6)]
    outcome = _queued_behind_a_held_lock(db, writes)
    assert sorted(outcome) == [k for k, _ in writes]
    assert all(isinstance(v, int) for v in outcome.values())
    assert len(db.rows()) == 12
    # the first alone, then the five that queued behind it together
    assert [s for s in db.trace if s in ("BEGIN IMMEDIATE", "COMMIT")] == [
        "BEGIN IMMEDIATE", "COMMIT", "BEGIN IMMEDIATE", "COMMIT"]
    assert sum(s.startswith("INSERT") for s in db.trace) == 12


def test_a_failing_write_in_a_shared_transaction_fails_alone(db: Db) -> None:
    writes = [("k0", "0"), ("k1", "1"), ("bad", None), ("k3", "3"), ("k4", "4")]
    outcome = _queued_behind_a_held_lock(db, writes)
    assert isinstance(outcome["bad"], sqlite3.IntegrityError)
    assert {k for k, v in outcome.items() if isinstance(v, int)} == {"k0", "k1", "k3", "k4"}
    good = [(k, v) for k, v in writes if v is not None]
    assert db.rows() == {**dict(good), **{k + "-twin": v for k, v in good}}
    assert "ROLLBACK" in db.trace  # the shared one was undone, then each was tried alone


def test_every_write_of_many_threads_is_committed_once(db: Db) -> None:
    def work(t: int) -> None:
        for i in range(200):
            db.commits.write([(INSERT, (f"{t}-{i}", "v")), (INSERT, (f"{t}-{i}-twin", "v"))])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert len(db.rows()) == 8 * 200 * 2
    assert not db.commits._leading and db.commits._queue == []


def test_a_closed_connection_is_reported_to_every_writer(db: Db) -> None:
    assert db.conn is not None
    db.conn.close()
    db.conn = None
    with pytest.raises(JournalClosed):
        db.commits.write([(INSERT, ("a", "1"))])


def test_a_writer_interrupted_while_queued_leaves_no_one_stuck(db: Db) -> None:
    """Ctrl-C reaches the main thread while its write waits behind a leader: that write is taken
    back (never committed), and the writes behind it are still committed."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGUSR1, interrupt)
    outcome: dict[str, int] = {}
    leader = threading.Thread(target=lambda: outcome.update(a=db.commits.write(
        [(INSERT, ("a", "1"))])))

    def ctrl_c_once_queued() -> None:
        while not (db.commits._leading and len(db.commits._queue) == 1):
            threading.Event().wait(0.001)
        os.kill(os.getpid(), signal.SIGUSR1)

    try:
        with db.lock:  # the leader waits for the connection meanwhile
            leader.start()
            while db.commits._queue or not db.commits._leading:
                threading.Event().wait(0.001)
            threading.Thread(target=ctrl_c_once_queued).start()
            with pytest.raises(KeyboardInterrupt):
                db.commits.write([(INSERT, ("main", "x"))])
            behind = threading.Thread(target=lambda: outcome.update(b=db.commits.write(
                [(INSERT, ("b", "2"))])))
            behind.start()
            while len(db.commits._queue) < 1:
                threading.Event().wait(0.001)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    leader.join(timeout=30)
    behind.join(timeout=30)
    assert not leader.is_alive() and not behind.is_alive()
    assert db.rows() == {"a": "1", "b": "2"} and sorted(outcome) == ["a", "b"]
    assert not db.commits._leading and db.commits._queue == []
