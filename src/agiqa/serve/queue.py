"""The scoring queue: bounded, first come first served, one worker thread that batches concurrent requests.

* **Bounded.** ``reserve`` takes one of ``queue_size`` places before a request's body is read; with none free the
  request is refused at once (``QueueFull``, answered 503 with ``Retry-After``). A place is held while the body
  uploads and while the job waits, and freed when the worker takes the job, or when the job is withdrawn.
* **First come, first served.** Jobs are scored in the order they were submitted (a deque, one worker).
* **Withdrawn jobs cost nothing.** A request whose client went away or whose wait passed the timeout is taken out
  of the queue (``withdraw``) and never scored; its uploads are closed.
* **Batched.** The worker takes the first job, then every job already waiting (and, for ``batch_wait_ms``, those
  arriving) while the images add up to at most ``batch_size``, and scores them in one ``Scorer.score`` call:
  one model call per ``batch_size`` images, the text tower once per distinct prompt. Scores do not depend on the
  batch (``Scorer.score``'s contract), so a request gets the scores it would get alone.
* **Off the event loop.** Scoring runs in the worker thread; the asyncio loop only waits on futures, so
  ``/health`` answers while a batch is scored. Uploads stay in Starlette's spooled files (on disk above 1 MiB)
  until the worker reads them, one batch at a time.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from agiqa.api import Scorer
from agiqa.serve.options import ServeOptions


class QueueFull(Exception):
    """Every place of the queue is taken.

    Attributes:
        retry_after: Seconds after which a retry has a fair chance (an estimate from the recent scoring speed).
    """

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the scoring queue is full; retry after {retry_after} s")
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return busy_headers(self.retry_after)


def busy_headers(retry_after: int) -> dict[str, str]:
    """Headers of a 503: ``Retry-After``, and ``Connection: close`` so that the client retries on a new connection.

    A client that kept the connection would send its retry on a socket idle for about ``Retry-After`` seconds, which
    the server's keep-alive timer may be closing at that moment: the request is lost with a read error.
    """
    return {"Retry-After": str(retry_after), "Connection": "close"}


@dataclass(eq=False)
class Job:
    """One request's images and prompts, or a call to run on the worker.

    Attributes:
        uploads: Image files (objects with a binary ``file``, as Starlette's ``UploadFile``) or bytes.
        prompts: One prompt per image.
        close: Releases the uploads; run once, by whoever holds the job last.
        fn: A callable to run on the worker instead of scoring (``ScoringQueue.call``).
        future: Resolves to the job's records (``Scorer.score(...).to_records()``), or ``fn``'s result.
        started: ``time.monotonic()`` when the worker took the job.
    """

    uploads: Sequence[Any] = ()
    prompts: Sequence[str] = ()
    close: Callable[[], None] | None = None
    fn: Callable[[], Any] | None = None
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)
    started: float | None = None

    def release(self) -> None:
        if self.close is not None:
            self.close()
            self.close = None


class ScoringQueue:
    """See the module docstring.

    Args:
        scorer: The model every job is scored with (only the worker thread calls it).
        options: ``queue_size``, ``batch_size``, ``batch_wait_ms``, ``max_image_bytes``.
    """

    def __init__(self, scorer: Scorer, options: ServeOptions) -> None:
        self.scorer = scorer
        self.options = options
        self._jobs: deque[Job] = deque()
        self._cond = threading.Condition()
        self._places = 0  # reserved: uploading or queued
        self._scoring = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._seconds_per_image = 1.0
        self.counts = dict.fromkeys(("served", "rejected", "timed_out", "dropped", "failed"), 0)

    def reserve(self) -> None:
        """Take a place for a request about to upload (give it back with ``release`` if it is never submitted).

        Raises:
            QueueFull: No place is free.
        """
        with self._cond:
            if self._places >= self.options.queue_size:
                self.counts["rejected"] += 1
                raise QueueFull(self._retry_after())
            self._places += 1

    def release(self) -> None:
        """Give back a place taken by ``reserve`` for a request that will not be submitted."""
        with self._cond:
            self._places -= 1

    def submit(self, job: Job) -> Job:
        """Queue a job that holds a place (``reserve``); the worker resolves ``job.future``."""
        with self._cond:
            if self._closed:
                self._places -= 1
                raise QueueFull(self._retry_after())
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="agiqa-scoring", daemon=True)
                self._thread.start()
            self._jobs.append(job)
            self._cond.notify()
        return job

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` on the worker between batches (for routes that use the model otherwise than ``score``).

        Raises:
            QueueFull: No place is free.
        """
        self.reserve()
        return self.submit(Job(fn=fn)).future

    def withdraw(self, job: Job, reason: str) -> bool:
        """Take a job out before it is scored (``reason``: ``timed_out`` or ``dropped``); False once it is scoring."""
        with self._cond:
            if job not in self._jobs:  # taken by the worker, or cancelled by ``close``
                return job.future.cancelled()
            self._jobs.remove(job)
            job.future.cancel()
            self._places -= 1
            self.counts[reason] += 1
        job.release()
        return True

    def stats(self) -> dict[str, Any]:
        """Queue state and counters since start (for ``/health``)."""
        with self._cond:
            return {
                "queued": len(self._jobs),
                "uploading": self._places - len(self._jobs),
                "scoring": self._scoring,
                "places": self.options.queue_size,
                **self.counts,
            }

    def close(self) -> None:
        """Stop the worker after its current batch; jobs still queued are cancelled."""
        with self._cond:
            self._closed = True
            pending = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
        for job in pending:
            job.future.cancel()
            job.release()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def retry_after(self) -> int:
        """Seconds after which a retry has a fair chance: the recent time per image times the images ahead."""
        with self._cond:
            return self._retry_after()

    def _retry_after(self) -> int:
        queued = sum(max(1, len(j.uploads)) for j in self._jobs) + self._places - len(self._jobs) + self._scoring
        return max(1, min(600, math.ceil(self._seconds_per_image * queued)))

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            if batch[0].fn is not None:
                _run_call(batch[0])
            else:
                self._score(batch)
            with self._cond:
                self._scoring = 0

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while not self._jobs and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            batch = [self._take()]
            if batch[0].fn is not None:
                return batch
            size = len(batch[0].uploads)
            deadline = time.monotonic() + self.options.batch_wait_ms / 1000
            while size < self.options.batch_size and not self._closed:
                if self._jobs:
                    head = self._jobs[0]
                    if head.fn is not None or size + len(head.uploads) > self.options.batch_size:
                        break
                    batch.append(self._take())
                    size += len(head.uploads)
                elif (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                else:
                    break
            self._scoring = size
            return batch

    def _take(self) -> Job:
        job = self._jobs.popleft()
        self._places -= 1
        job.future.set_running_or_notify_cancel()  # always True: withdrawn jobs have left the deque
        job.started = time.monotonic()
        return job

    def _score(self, batch: list[Job]) -> None:
        limit = self.options.max_image_bytes
        try:
            payloads = [_read(upload, limit) for job in batch for upload in job.uploads]
            texts = [p for job in batch for p in job.prompts]
            start = time.perf_counter()
            records = self.scorer.score(
                [b"" if p is None else p for p in payloads], texts, batch_size=self.options.batch_size
            ).to_records()
            seconds = (time.perf_counter() - start) / max(1, len(payloads))
            self._seconds_per_image = 0.8 * self._seconds_per_image + 0.2 * seconds
            for record, payload in zip(records, payloads, strict=True):
                if payload is None:
                    record["error"] = f"image: upload larger than {limit} bytes"
            start = 0
            for job in batch:
                job.future.set_result(records[start : start + len(job.uploads)])
                start += len(job.uploads)
            self.counts["served"] += len(batch)
        except Exception as exc:  # a bug, not a bad image (those are errors in their records): fail the batch
            self.counts["failed"] += len(batch)
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
        finally:
            for job in batch:
                job.release()


def _read(upload: Any, limit: int) -> bytes | None:
    """The upload's bytes, or None when it is larger than ``limit`` (only ``limit + 1`` bytes are read)."""
    data = upload if isinstance(upload, bytes) else upload.file.read(limit + 1)
    return None if len(data) > limit else data


def _run_call(job: Job) -> None:
    try:
        job.future.set_result(job.fn())  # type: ignore[misc]
    except Exception as exc:
        job.future.set_exception(exc)
