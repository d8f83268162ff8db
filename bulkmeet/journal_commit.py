"""Group commit for the journal: the writes of many threads share one SQLite transaction, and
each caller returns only once its own write is committed.

Why: a run sends with 16 worker threads and records every answer before the row counts as done.
With one lock around "BEGIN, INSERT, UPSERT, COMMIT", measured on bench scenario 4 (5,000 rows,
no latency), the lock was held for only 0.2 ms per record but the workers waited ~5 ms each for
it: each hand-over of the lock to the next thread also waits for that thread to get the GIL back
from the 15 others parsing HTTP, so the journal lock, not SQLite, set the pace (~1,100 rows/s).
Here a thread that finds no commit under way becomes the *leader*: it takes every write queued so
far (its own included) and commits them in one transaction; the threads that queued meanwhile
wait on their own event. When the leader is done it hands the lead to the first thread that
queued during its commit, so the lock changes hands once per batch instead of once per row, and
nobody waits for a thread that is not running. A thread alone (tests, the sync phases) leads at
once: no extra thread, no hand-over.

What a caller is promised is unchanged: ``write()`` returns after COMMIT of a transaction that
holds its statements (all or none); if that transaction fails, each write of the batch is
retried alone, so one caller's failure is its own.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

Statements = list[tuple[str, tuple[Any, ...]]]


class JournalClosed(Exception):
    """The connection was closed before this write could be committed."""


class _Write:
    """One caller's statements, and how they ended (or that the caller now leads)."""

    __slots__ = ("statements", "event", "lead", "rowid", "error", "finished")

    def __init__(self, statements: Statements) -> None:
        self.statements = statements
        self.event = threading.Event()
        self.lead = False
        self.rowid = 0
        self.error: BaseException | None = None
        self.finished = False


class GroupCommit:
    """Commits queued writes in batches, on the callers' own threads (see the module docstring).

    ``lock`` guards the connection (readers take it too); ``connection()`` returns it, or None
    once it is closed.
    """

    def __init__(self, lock: threading.Lock,
                 connection: Callable[[], sqlite3.Connection | None]) -> None:
        self._lock = lock
        self._connection = connection
        self._queue: list[_Write] = []
        self._queue_lock = threading.Lock()
        self._leading = False

    def write(self, statements: Statements) -> int:
        """Run ``statements`` in one transaction; return once committed, with the last
        statement's row id. Raises ``sqlite3.Error`` or ``JournalClosed`` (nothing was kept)."""
        me = _Write(statements)
        with self._queue_lock:
            self._queue.append(me)
            lead = not self._leading
            self._leading = True
        if not lead:
            try:
                me.event.wait()  # committed by a leader, or made the leader
            except BaseException:  # KeyboardInterrupt while waiting: leave no one stuck
                self._abandon(me)
                raise
        if not me.finished:
            self._lead()
        if me.error is not None:
            raise me.error
        return me.rowid

    def _abandon(self, me: _Write) -> None:
        """Take back a write not yet taken by a leader; pass the lead on if it was given."""
        with self._queue_lock:
            if me not in self._queue:
                return  # a leader has it: committed, or failed on its own
            promoted = self._queue[0] is me and me.event.is_set()
            self._queue.remove(me)
            if promoted:
                if self._queue:
                    self._queue[0].event.set()
                else:
                    self._leading = False

    def _lead(self) -> None:
        with self._queue_lock:
            batch, self._queue = self._queue, []
        try:
            self._commit(batch)
        finally:
            for w in batch:
                if not w.finished:  # interrupted half-way (KeyboardInterrupt in this thread)
                    w.error = sqlite3.OperationalError("the journal write was interrupted")
                    w.finished = True
                w.event.set()
            with self._queue_lock:
                if self._queue:  # written while we committed: the first of them leads next
                    self._queue[0].event.set()
                else:
                    self._leading = False

    def _commit(self, batch: list[_Write]) -> None:
        with self._lock:
            db = self._connection()
            if db is None:
                for w in batch:
                    w.error, w.finished = JournalClosed(), True
                return
            if len(batch) > 1:
                try:
                    db.execute("BEGIN IMMEDIATE")
                    rowids = [_run(db, w.statements) for w in batch]
                    db.execute("COMMIT")
                except sqlite3.Error:
                    _rollback(db)  # ... and try each alone below: a failure stays its caller's
                except BaseException:
                    _rollback(db)  # never leave the connection inside a transaction
                    raise
                else:
                    for w, rowid in zip(batch, rowids, strict=True):
                        w.rowid, w.finished = rowid, True
                    return
            for w in batch:
                try:
                    w.rowid = _alone(db, w.statements)
                except sqlite3.Error as exc:
                    w.error = exc
                w.finished = True


def _run(db: sqlite3.Connection, statements: Statements) -> int:
    last = 0
    for sql, params in statements:
        last = db.execute(sql, params).lastrowid or 0
    return last


def _alone(db: sqlite3.Connection, statements: Statements) -> int:
    if len(statements) == 1:  # autocommit: one statement is its own transaction
        return db.execute(*statements[0]).lastrowid or 0
    try:
        db.execute("BEGIN IMMEDIATE")
        last = _run(db, statements)
        db.execute("COMMIT")
        return last
    except BaseException:
        _rollback(db)
        raise


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
