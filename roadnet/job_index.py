"""The job index: which jobs exist, whose they are and when they were created, in SQLite in the data
directory, so that listing a caller's jobs or counting their active ones reads their records only.

The records (``job.json``) stay the one truth; the index holds only what never changes once a job exists
(id, owner, creation time) and a flag set once a job has been seen final. Why SQLite: one file, no
server, transactions and an ordered index for paging, in the standard library. Why only these facts:
only the service writes the index (at creation, when it reads records, at expiry), never the workers,
so it is one host's file even when the data directory is a shared volume, where SQLite's locking is
unreliable; and facts that never change cannot fall out of step with the records. A missing index is
rebuilt from the records. It keeps SQLite's default rollback journal, not a write-ahead log, whose
extra files each first connection makes afresh: a full disk would refuse them and fail even reads.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path

#: One indexed job: id, owner (None without API keys), creation time, whether it is final.
IndexRow = tuple[str, str | None, datetime, bool]

_SCHEMA = (
    "CREATE TABLE jobs (id TEXT PRIMARY KEY, owner TEXT, created TEXT NOT NULL, final INTEGER NOT NULL)",
    "CREATE INDEX jobs_by_owner ON jobs (owner, created)",
    "CREATE INDEX jobs_by_created ON jobs (created)",
)


class JobIndex:
    """``jobs`` rows in the SQLite file ``path``; ``scan`` lists every record's row, to build it."""

    def __init__(self, path: Path, scan: Callable[[], Iterable[IndexRow]]) -> None:
        self.path, self.scan = path, scan
        self._ready = False
        self._ready_lock = threading.Lock()

    def _build_once(self) -> None:
        """Create the table from the records unless it exists; under SQLite's write lock, so that one
        thread or process builds it while the others wait."""
        with self._ready_lock:
            if self._ready:
                return
            with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
                db.execute("BEGIN IMMEDIATE")
                if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone():
                    for statement in _SCHEMA:
                        db.execute(statement)
                    db.executemany(
                        "INSERT OR IGNORE INTO jobs VALUES (?, ?, ?, ?)", map(_values, self.scan())
                    )
                db.execute("COMMIT")
            self._ready = True

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction (one per call: the service calls from many threads)."""
        self._build_once()
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db

    def add(self, job_id: str, owner: str | None, created: datetime) -> None:
        """Index a new job."""
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?)", _values((job_id, owner, created, False))
            )

    def remove(self, job_ids: Iterable[str]) -> None:
        """Forget removed jobs."""
        with self._db() as db:
            db.executemany("DELETE FROM jobs WHERE id = ?", ((job_id,) for job_id in job_ids))

    def mark_final(self, job_ids: Iterable[str]) -> None:
        """Note jobs seen final (a final job never changes status again)."""
        with self._db() as db:
            db.executemany("UPDATE jobs SET final = 1 WHERE id = ?", ((job_id,) for job_id in job_ids))

    def page(self, owner: str | None, *, limit: int, offset: int) -> tuple[list[str], int]:
        """Ids of ``owner``'s jobs (everyone's when None), newest first: one page and the total count."""
        where, args = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())
        with self._db() as db:
            total = db.execute(f"SELECT count(*) FROM jobs {where}", args).fetchone()[0]
            rows = db.execute(
                f"SELECT id FROM jobs {where} ORDER BY created DESC, id LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return [row[0] for row in rows], int(total)

    def unfinished(self, owner: str | None) -> list[str]:
        """Ids of ``owner``'s jobs not yet seen final (everyone's when None)."""
        where, args = ("AND owner = ?", (owner,)) if owner is not None else ("", ())
        with self._db() as db:
            rows = db.execute(f"SELECT id FROM jobs WHERE final = 0 {where}", args).fetchall()
        return [row[0] for row in rows]


def _values(row: IndexRow) -> tuple[str, str | None, str, int]:
    job_id, owner, created, final = row
    return job_id, owner, created.isoformat(timespec="microseconds"), int(final)
