"""Runs jobs off the request path: a few worker threads, one build per collection at a time.

Heavy work (index builds) goes further, into a spawned process (``app.jobs.build``), so a
cancel can kill it and a crash in native code cannot take the API down. Progress lives in memory
for streaming and is written to the job table at most twice a second and at every state change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from app.errors import Conflict, InvalidInput, NotFound
from app.jobs.model import MAX_ATTEMPTS, Job, JobTable

if TYPE_CHECKING:
    from app.service import SearchService

log = logging.getLogger(__name__)


#: Kinds that rewrite a collection's segments: at most one of them runs per collection.
EXCLUSIVE = frozenset({"build", "compact"})


class Cancelled(Exception):
    """Raised inside a handler when its job was cancelled."""


class Interrupted(Exception):
    """Raised inside a handler when the service is stopping: the job is resumed at start-up."""


class JobContext:
    """What a handler sees: progress reporting and cancellation checks."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self.runner, self.job = runner, job
        self.cancel_event = threading.Event()
        self._phase_start = (time.monotonic(), 0)
        self._saved = 0.0

    @property
    def stopping(self) -> bool:
        return self.runner.stopping.is_set()

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()
        if self.stopping:
            raise Interrupted()

    def progress(self, phase: str, done: int, total: int | None = None) -> None:
        """Report ``done`` of ``total`` units in ``phase``; within a phase ``done`` only grows."""
        job = self.job
        now = time.monotonic()
        if phase != job.phase:
            self._phase_start = (now, done)
        elif done < job.done:
            done = job.done  # progress is monotonic even if a handler re-reports
        t0, d0 = self._phase_start
        rate = (done - d0) / (now - t0) if now > t0 and done > d0 else None
        eta = (total - done) / rate if rate and total is not None else None
        self.runner._update(job, phase=phase, done=done, total=total, rate_per_s=rate, eta_s=eta)
        if now - self._saved > 0.5:
            self._saved = now
            self.runner.table.save(job)


Handler = Callable[[JobContext, "SearchService"], dict[str, Any] | None]


class JobRunner:
    """Queue + worker threads over the durable job table."""

    def __init__(
        self,
        service: SearchService,
        table: JobTable,
        handlers: dict[str, Handler],
        workers: int = 2,
    ) -> None:
        self.service, self.table, self.handlers = service, table, handlers
        self.stopping = threading.Event()
        self._cond = threading.Condition()
        self._live: dict[str, JobContext] = {}
        self._versions: dict[str, int] = {}
        self._threads = [
            threading.Thread(target=self._work, name=f"job-worker-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        """Re-queue what a stop or crash interrupted, then start the workers."""
        for job in self.table.unfinished():
            if job.attempts >= MAX_ATTEMPTS:
                job.state, job.finished_at = "failed", time.time()
                job.error = f"interrupted {job.attempts} times (server stopped or crashed); gave up"
            else:
                job.state, job.phase = "queued", "requeued after restart"
            self.table.save(job)
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self.stopping.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=30)

    # ---- API ------------------------------------------------------------------------------

    def submit(self, kind: str, collection: str, params: dict[str, Any]) -> Job:
        if kind not in self.handlers:
            raise InvalidInput(f"unknown job kind {kind!r} (known: {', '.join(self.handlers)})")
        job = Job(kind=kind, collection=collection, params=params)
        self.table.save(job)
        with self._cond:
            self._cond.notify_all()
        return job

    def get(self, job_id: str) -> Job:
        ctx = self._live.get(job_id)
        if ctx is not None:
            return replace(ctx.job)
        job = self.table.get(job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        return job

    def version(self, job_id: str) -> int:
        return self._versions.get(job_id, 0)

    def select(self, collection: str | None = None, state: str | None = None) -> list[Job]:
        jobs = self.table.select(collection, state)
        return [self.get(j.id) if j.id in self._live else j for j in jobs]

    def cancel(self, job_id: str) -> Job:
        with self._cond:
            ctx = self._live.get(job_id)
            if ctx is not None:
                ctx.cancel_event.set()
                return replace(ctx.job)
            job = self.get(job_id)
            if job.final:
                raise Conflict(f"job {job_id} already {job.state}")
            job.state, job.phase, job.finished_at = "cancelled", "cancelled", time.time()
            self.table.save(job)
            self._bump(job.id)
            return job

    # ---- internals ------------------------------------------------------------------------

    def _bump(self, job_id: str) -> None:
        self._versions[job_id] = self._versions.get(job_id, 0) + 1

    def _update(self, job: Job, **changes: Any) -> None:
        with self._cond:
            for k, v in changes.items():
                setattr(job, k, v)
            self._bump(job.id)
            self._cond.notify_all()

    def _next(self) -> Job | None:
        busy = {c.job.collection for c in self._live.values() if c.job.kind in EXCLUSIVE}
        for job in self.table.unfinished():
            if job.state != "queued" or job.id in self._live:
                continue
            if job.kind not in EXCLUSIVE or job.collection not in busy:
                return job
        return None

    def _work(self) -> None:
        while not self.stopping.is_set():
            with self._cond:
                job = self._next()
                if job is None:
                    self._cond.wait(timeout=1.0)
                    continue
                ctx = JobContext(self, job)
                self._live[job.id] = ctx
                job.state, job.phase, job.started_at = "running", "starting", time.time()
                job.attempts += 1
                job.done, job.error = 0, None
                self._bump(job.id)
                self.table.save(job)
            self._run(ctx)

    def _run(self, ctx: JobContext) -> None:
        job = ctx.job
        try:
            result = self.handlers[job.kind](ctx, self.service)
            self._update(job, state="succeeded", phase="done", result=result, eta_s=0.0)
        except Cancelled:
            self._update(job, state="cancelled", phase="cancelled")
        except Interrupted:
            self._update(job, state="queued", phase="interrupted by shutdown")
        except Exception as exc:  # a job failure is reported on the job, not raised
            if not isinstance(exc, InvalidInput | NotFound | Conflict):
                log.exception("job %s (%s on %s) failed", job.id, job.kind, job.collection)
            self._update(job, state="failed", phase="failed", error=f"{exc}")
        finally:
            if job.state != "queued":
                job.finished_at = time.time()
            self.table.save(job)
            with self._cond:
                self._live.pop(job.id, None)
                self._bump(job.id)
                self._cond.notify_all()
