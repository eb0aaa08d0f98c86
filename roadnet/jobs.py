"""The job store: one folder per job in the data directory, shared by the service and every worker.

Layout under ``<data_dir>/jobs/<job id>/``::

    job.json        the record (:class:`JobRecord`), replaced atomically (temporary file, then rename)
    .lock           flock'ed for every read-modify-write of the record
    input.tif       the uploaded scene (none when the worker reads the scene in place from its URL)
    work-<token>/   one attempt's outputs while it runs (removed when it ends)
    results/        the published outputs, moved in from a finished attempt one rename each

Why files and not SQLite: the data directory is a shared volume at scale (docker-compose, NFS), where
SQLite's locking is unreliable, and a folder per job makes removal one ``rmtree``. Listing and counting
a caller's jobs go through the service's own index (:mod:`roadnet.job_index`), so they read only that
caller's records.

Job ids are ``secrets.token_urlsafe(16)`` (128 random bits); an id from a URL is checked against
:data:`JOB_ID_PATTERN` before it names a folder, and result files have fixed names (:data:`OUTPUTS`), so no
path is built from user input.

Status lifecycle: ``accepted`` -> ``running`` -> ``successful`` | ``failed``; any state -> ``dismissed``
(cancelled or deleted by its owner). The three last are final: a late update from a worker never
changes them, which is what makes a redelivered or duplicated task harmless.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from roadnet.errors import (
    NoSuchJobError,
    NotFoundError,
    StorageFullError,
    StorageReadOnlyError,
    redact_paths,
)
from roadnet.job_index import IndexRow, JobIndex
from roadnet.outputs import OUTPUTS, OutputName
from roadnet.urls import gdal_path

log = logging.getLogger(__name__)

JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")
RECORD = "job.json"
INPUT = "input.tif"
RESULTS = "results"


class JobStatus(StrEnum):
    """OGC API - Processes status codes."""

    accepted = "accepted"
    running = "running"
    successful = "successful"
    failed = "failed"
    dismissed = "dismissed"


FINAL = frozenset({JobStatus.successful, JobStatus.failed, JobStatus.dismissed})


class JobOptions(BaseModel):
    """What a user may set for one job; a field left None takes the model's or the engine's default."""

    model_config = {"extra": "forbid"}

    stride: int | None = Field(
        default=None,
        ge=16,
        le=1024,
        description="Sliding-window stride in pixels (default: the model's, 64 as in the paper). "
        "Larger is faster; overlapping windows are averaged, so smaller is smoother.",
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Road probability at and above which a pixel is road (default: the model's, 0.5).",
    )
    fast: bool = Field(
        default=False,
        description="Larger windows at a larger stride: about 9 times less computation, slightly rougher.",
    )
    min_spur_m: float | None = Field(
        default=None, ge=0, le=1000, description="Dead-end branches shorter than this (metres) are dropped."
    )
    min_fragment_m: float | None = Field(
        default=None, ge=0, le=10_000, description="Road pieces under this total length (metres) are dropped."
    )
    max_gap_m: float | None = Field(
        default=None, ge=0, le=1000, description="Aligned dead ends closer than this (metres) are joined."
    )
    simplify_m: float | None = Field(
        default=None, ge=0, le=100, description="Tolerance of the line simplification (metres)."
    )


#: How ``/jobs/{id}/results`` answers (OGC API - Processes ``response``).
ResultsResponse = Literal["raw", "document"]


def utcnow() -> datetime:
    """Now, timezone-aware UTC (every timestamp in a record is)."""
    return datetime.now(UTC)


class JobRecord(BaseModel):
    """What the store knows about one job; ``job.json``."""

    id: str
    owner: str | None = Field(description="SHA-256 of the creator's API key; None without API keys")
    status: JobStatus = JobStatus.accepted
    message: str = ""
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    updated: datetime
    progress: int = Field(default=0, ge=0, le=100)
    filename: str = Field(description="The uploaded file's name, for display only")
    options: dict[str, Any] = Field(default_factory=dict)
    scene: dict[str, Any] = Field(default_factory=dict)
    bbox: list[float] | None = Field(
        default=None, description="The scene's WGS 84 lon/lat bounds [west, south, east, north]"
    )
    summary: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    worker: str | None = Field(default=None, description="Celery hostname of the worker running it")
    results: list[OutputName] = Field(default_factory=list)
    source_url: str | None = Field(
        default=None, description="The scene's URL when GDAL reads it in place (a COG by reference)"
    )
    outputs: list[OutputName] | None = Field(
        default=None, description="The outputs an execute request asked for; None: all of them"
    )
    response: ResultsResponse = Field(
        default="document",
        description="How an execute request wants /results: raw (the file, for one output) or a document",
    )


class JobEnded(Exception):
    """Raised into a running pipeline when its job was dismissed or removed meanwhile: stop quietly."""


#: SQLite's primary result codes for a full disk and a read-only database (the job index).
SQLITE_FULL, SQLITE_READONLY = 13, 8


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn a full or read-only data directory into :class:`StorageFullError` or
    :class:`StorageReadOnlyError`, whose messages name no path."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        code = exc.errno if isinstance(exc, OSError) else getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code in (errno.ENOSPC, errno.EDQUOT, SQLITE_FULL):
            raise StorageFullError(
                "the service's storage is full, so nothing was stored; try again later, and tell the "
                "service's operator if it lasts"
            ) from exc
        if code in (errno.EROFS, SQLITE_READONLY):
            raise StorageReadOnlyError(
                "the service's storage is read-only, so nothing was stored or deleted; tell the service's "
                "operator"
            ) from exc
        raise


class JobStore:
    """Job records and files under ``<data_dir>/jobs``; safe to use from many processes at once."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "jobs"
        self.uploads = Path(data_dir) / "uploads"
        self.root.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)
        #: Opened on first use: only the service's calls (create, page, count_active, removal) use it.
        self.index = JobIndex(Path(data_dir) / "index.sqlite", self._index_rows)

    # ---- paths (never from user input: ids are checked, file names are fixed) ----

    def folder(self, job_id: str) -> Path:
        """The job's folder; :class:`NotFoundError` for a string that cannot be a job id."""
        if not JOB_ID_PATTERN.fullmatch(job_id):
            raise NoSuchJobError(f"no job {job_id!r}")
        return self.root / job_id

    def input_path(self, job_id: str) -> Path:
        """The uploaded scene."""
        return self.folder(job_id) / INPUT

    def scene_path(self, record: JobRecord) -> Path:
        """What the worker opens: the uploaded scene, or GDAL's path to the scene's URL."""
        return gdal_path(record.source_url) if record.source_url else self.input_path(record.id)

    def result_path(self, job_id: str, output: OutputName) -> Path:
        """The published file of ``output`` (a key of :data:`OUTPUTS`)."""
        return self.folder(job_id) / RESULTS / OUTPUTS[output].filename

    def new_upload_path(self) -> Path:
        """A fresh temporary file name in the data directory for an upload being received."""
        return self.uploads / f"{secrets.token_urlsafe(12)}.part"

    def new_workdir(self, job_id: str) -> Path:
        """A fresh, empty folder for one attempt's outputs (published by :meth:`publish`)."""
        workdir = self.folder(job_id) / f"work-{secrets.token_hex(6)}"
        workdir.mkdir()
        return workdir

    # ---- records ----

    def _read(self, folder: Path) -> JobRecord:
        try:
            return JobRecord.model_validate_json((folder / RECORD).read_bytes())
        except FileNotFoundError:
            raise NoSuchJobError(f"no job {folder.name!r}") from None

    def _write(self, folder: Path, record: JobRecord) -> None:
        record.updated = utcnow()
        tmp = folder / f".{RECORD}.{secrets.token_hex(4)}"
        try:
            tmp.write_text(record.model_dump_json(indent=1))
            os.replace(tmp, folder / RECORD)
        except BaseException:  # a full disk: no half-written record is left beside the last good one
            tmp.unlink(missing_ok=True)
            raise

    @contextmanager
    def _locked(self, job_id: str) -> Iterator[tuple[Path, JobRecord]]:
        """The job's folder and record, read under its lock; write the record back before leaving."""
        folder = self.folder(job_id)
        try:
            fd = os.open(folder / ".lock", os.O_RDWR)
        except FileNotFoundError:
            raise NoSuchJobError(f"no job {job_id!r}") from None
        try:
            # flock (not lockf): it excludes threads of one process too, each holding its own open file.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield folder, self._read(folder)  # NotFoundError when removed while we waited
        finally:
            os.close(fd)

    def create(
        self,
        upload: Path,
        *,
        owner: str | None,
        filename: str,
        options: Mapping[str, Any],
        scene: Mapping[str, Any],
        bbox: list[float] | None = None,
        outputs: list[OutputName] | None = None,
        response: ResultsResponse = "document",
        source_url: str | None = None,
    ) -> JobRecord:
        """A new ``accepted`` job; ``upload`` (in this data directory) is moved in as its input, unless
        the scene is ``source_url``, read in place (``upload`` is then GDAL's path to it, left alone).

        All or nothing: when the data directory is full or read-only (:func:`storage_errors`), the job's
        folder is removed again and ``upload`` stays where it was.
        """
        job_id = secrets.token_urlsafe(16)
        folder = self.folder(job_id)
        now = utcnow()
        record = JobRecord(
            id=job_id,
            owner=owner,
            message="waiting for a worker",
            created=now,
            updated=now,
            filename=filename,
            options=dict(options),
            scene=dict(scene),
            bbox=bbox,
            outputs=outputs,
            response=response,
            source_url=source_url,
        )
        with storage_errors():
            try:
                folder.mkdir()
                (folder / ".lock").touch()
                self._write(folder, record)  # before the move, which then cannot fail for space
                self.index.add(job_id, owner, now)
                if source_url is None:
                    os.replace(upload, folder / INPUT)
            except BaseException:
                self.remove(job_id)
                raise
        return record

    def remove(self, job_id: str) -> None:
        """Remove a job and its files at once (a job that could not be queued)."""
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
        # On a full disk the row may stay: listings skip it, its record being gone.
        with contextlib.suppress(sqlite3.Error, OSError):
            self.index.remove([job_id])

    def get(self, job_id: str) -> JobRecord:
        """The record; :class:`NotFoundError` when there is none."""
        return self._read(self.folder(job_id))

    def _records(self) -> Iterator[JobRecord]:
        for folder in self.root.iterdir():
            try:
                yield self._read(folder)
            except (NotFoundError, ValueError):  # removed meanwhile, or creation interrupted
                continue

    def _index_rows(self) -> Iterator[IndexRow]:
        for record in self._records():
            yield record.id, record.owner, record.created, record.status in FINAL

    def _existing(self, job_ids: list[str]) -> list[JobRecord]:
        records = []
        for job_id in job_ids:
            with contextlib.suppress(NotFoundError, ValueError):  # removed meanwhile
                records.append(self.get(job_id))
        return records

    def page(self, owner: str | None, *, limit: int, offset: int = 0) -> tuple[list[JobRecord], int]:
        """``owner``'s jobs (every job when None), newest first: one page and the total count."""
        job_ids, total = self.index.page(owner, limit=limit, offset=offset)
        return self._existing(job_ids), total

    def count_active(self, owner: str | None) -> int:
        """How many ``accepted`` or ``running`` jobs ``owner`` has (every owner's when None)."""
        records = self._existing(self.index.unfinished(owner))
        with storage_errors():
            self.index.mark_final(r.id for r in records if r.status in FINAL)
        return sum(r.status not in FINAL for r in records)

    def ids(self, statuses: frozenset[JobStatus] | set[JobStatus]) -> list[str]:
        """Ids of every job in one of ``statuses``, oldest first."""
        records = sorted((r for r in self._records() if r.status in statuses), key=lambda r: r.created)
        return [r.id for r in records]

    # ---- transitions ----

    def start(self, job_id: str, worker: str) -> JobRecord | None:
        """Mark a job ``running`` for a new attempt; None when it is already final (nothing to do)."""
        with self._locked(job_id) as (folder, record):
            if record.status in FINAL:
                return None
            record.status = JobStatus.running
            record.started = utcnow()
            record.attempts += 1
            record.worker = worker
            record.progress = 0
            record.message = (
                "starting" if record.attempts == 1 else f"starting again (attempt {record.attempts})"
            )
            self._write(folder, record)
            return record

    def report(self, job_id: str, progress: int, message: str) -> None:
        """Record a running job's progress; :class:`JobEnded` when it was dismissed or removed."""
        try:
            with self._locked(job_id) as (folder, record):
                if record.status in FINAL:
                    raise JobEnded(job_id)
                record.progress = max(0, min(progress, 99))
                record.message = message
                self._write(folder, record)
        except NotFoundError:
            raise JobEnded(job_id) from None

    def publish(self, job_id: str, workdir: Path, summary: Mapping[str, Any]) -> JobRecord:
        """Move every output of :data:`OUTPUTS` from ``workdir`` into ``results/`` and end ``successful``.

        Each file moves with one rename, so ``results/`` only ever holds complete files. Raises
        :class:`JobEnded` when the job was dismissed meanwhile (the outputs are then not kept).
        """
        try:
            with self._locked(job_id) as (folder, record):
                if record.status in FINAL:
                    raise JobEnded(job_id)
                results = folder / RESULTS
                results.mkdir(exist_ok=True)
                for output in OUTPUTS.values():
                    os.replace(workdir / output.filename, results / output.filename)
                # Attempts killed earlier left their folders (a duplicate still running fails harmlessly).
                for stale in folder.glob("work-*"):
                    if stale != workdir:
                        shutil.rmtree(stale, ignore_errors=True)
                record.status = JobStatus.successful
                record.finished = utcnow()
                record.progress = 100
                record.message = "finished"
                record.summary = dict(summary)
                record.results = list(OUTPUTS)
                self._write(folder, record)
                return record
        except NotFoundError:
            raise JobEnded(job_id) from None

    def fail(self, job_id: str, message: str) -> None:
        """End a job that is not final yet ``failed`` with ``message`` (no-op otherwise)."""
        try:
            with self._locked(job_id) as (folder, record):
                if record.status in FINAL:
                    return
                record.status = JobStatus.failed
                record.finished = utcnow()
                record.message = redact_paths(message)
                self._write(folder, record)
        except NotFoundError:
            log.info("job %s was removed before it could be marked failed", job_id)

    def dismiss(self, job_id: str) -> JobRecord:
        """Cancel (or delete the results of) a job: it ends ``dismissed`` and its files are removed.

        The record stays until the cleanup removes it, so a worker still running the job sees the
        dismissal at its next progress report and stops.
        """
        with storage_errors(), self._locked(job_id) as (folder, record):
            if record.status is not JobStatus.dismissed:
                record.status = JobStatus.dismissed
                record.finished = utcnow()
                record.message = "dismissed by its owner; its files were deleted"
                record.results = []
                self._write(folder, record)
            for path in folder.iterdir():
                if path.name not in (RECORD, ".lock"):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            return record

    def requeue_unfinished(self) -> list[str]:
        """Set every ``accepted`` or ``running`` job back to ``accepted``; their ids, oldest first.

        For a worker that (re)starts with a broker that does not redeliver (embedded mode).
        """
        ids = self.ids({JobStatus.accepted, JobStatus.running})
        for job_id in ids:
            try:
                with self._locked(job_id) as (folder, record):
                    if record.status is JobStatus.running:
                        record.status = JobStatus.accepted
                        record.progress = 0
                        record.message = "queued again: the worker stopped while running it"
                        self._write(folder, record)
            except NotFoundError:
                continue
        return ids

    def remove_expired(self, ttl: timedelta, now: datetime | None = None) -> list[str]:
        """Remove final jobs that ended more than ``ttl`` ago, and uploads and worker heartbeats that
        old."""
        now = now or utcnow()
        removed = []
        for folder in self.root.iterdir():
            try:
                try:
                    record = self._read(folder)
                    if record.status not in FINAL:
                        continue
                    ended = record.finished or record.updated
                except (NotFoundError, ValueError):  # no record: its creation was interrupted
                    ended = datetime.fromtimestamp(folder.stat().st_mtime, UTC)
            except FileNotFoundError:  # removed meanwhile
                continue
            if now - ended > ttl:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        try:
            self.index.remove(removed)
        except sqlite3.Error as exc:  # a full disk: the rows stay, and listings skip them (no record)
            log.warning("could not remove expired jobs from the index: %s", exc)
        # Abandoned uploads, and heartbeats of workers gone for good (killed, or renamed).
        for path in [*self.uploads.glob("*.part"), *(self.root.parent / "workers").glob("*.json")]:
            try:
                if now - datetime.fromtimestamp(path.stat().st_mtime, UTC) > ttl:
                    path.unlink(missing_ok=True)
            except FileNotFoundError:
                continue
        return removed


# ---- worker heartbeats: how the service knows a worker is alive, whatever the broker ----

#: Seconds between a worker's heartbeats; one older than three intervals is a dead worker's.
HEARTBEAT_INTERVAL_S = 10.0


def _heartbeat_path(data_dir: Path, hostname: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", hostname)
    return Path(data_dir) / "workers" / f"{safe}.json"


def record_heartbeat(data_dir: Path, hostname: str) -> None:
    """Say that worker ``hostname`` is alive now (atomically replaced ``workers/<hostname>.json``)."""
    path = _heartbeat_path(data_dir, hostname)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(json.dumps({"hostname": hostname, "pid": os.getpid(), "seen": utcnow().isoformat()}))
    os.replace(tmp, path)


def forget_worker(data_dir: Path, hostname: str) -> None:
    """Remove a worker's heartbeat when it shuts down cleanly."""
    _heartbeat_path(data_dir, hostname).unlink(missing_ok=True)


def live_workers(data_dir: Path, now: datetime | None = None) -> list[str]:
    """Hostnames of the workers whose last heartbeat is at most three intervals old."""
    now = now or utcnow()
    alive = []
    for path in (Path(data_dir) / "workers").glob("*.json"):
        try:
            beat = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if now - datetime.fromisoformat(beat["seen"]) <= timedelta(seconds=3 * HEARTBEAT_INTERVAL_S):
            alive.append(beat["hostname"])
    return sorted(alive)
