"""The checkpoint writer thread: a bounded queue of saves, written in order.

A save is a :class:`SaveJob`. The training thread creates it at the save epoch with the state
packed on the device; the writer copies it to the host and writes ``state.safetensors`` into a
temporary directory at once, then waits for the job's loss row (the training loop computes the
loss of epoch ``e`` as the first row of the chunk that starts at ``e``; see
:meth:`SaveJob.set_row`), writes ``metadata.json`` and renames the directory to ``<epoch>``.

Bounds (what the callback relies on): the queue holds at most :data:`MAX_QUEUED` jobs, and
:meth:`Writer.submit` blocks while it is full (back-pressure on the training thread instead
of an unbounded backlog of states in memory). The thread is a daemon that never touches
``concurrent.futures``' executors, so it still runs during interpreter exit (``atexit``), where
the callback's ``close()`` waits for it.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import os
import threading
from typing import Any, Callable

__all__ = ["SaveJob", "Writer", "MAX_QUEUED"]

#: saves queued but not yet started, at most (the one being written comes on top)
MAX_QUEUED = 1


class SaveJob:
    """One save: the inputs the writer needs and two futures.

    :ivar epoch: the saved epoch.
    :ivar payload: whatever the callback's write function needs (a tuple).
    :ivar row: resolves to the recorded ``[total, loss_1..N]`` row of ``epoch`` or ``None``
        (then the writer evaluates the losses itself).
    :ivar done: resolves to the saved metadata, or to the write's exception.
    :ivar final: the save at the end of a solve (``solve()`` does not wait for it).
    """

    def __init__(self, epoch: int, payload: tuple, run: Any, final: bool = False) -> None:
        self.epoch = int(epoch)
        self.payload = payload
        self.run = run
        self.final = final
        self.row: cf.Future = cf.Future()
        self.done: cf.Future = cf.Future()
        #: set (under the writer's lock, in the same step that queues it) once the job is in
        #: the writer's queue. An interrupt may stop the training thread before: such a job is
        #: never written and never waited for. Read it through :meth:`Writer.accepted`.
        self.queued = False
        #: set by the writer thread (under its lock) when it takes the job from the queue
        self.taken = False

    def set_row(self, row: Any) -> None:
        """Hand over the loss row (idempotent: the first value wins)."""
        if not self.row.done():
            self.row.set_result(row)


def _lower_priority() -> None:
    """nice +10 for the calling thread (Linux: per thread), so on a busy machine the scheduler
    prefers the training thread; with idle cores it changes nothing."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


class Writer:
    """A daemon thread running ``write(job)`` for each submitted :class:`SaveJob`, in order.

    The queue is a deque under a condition variable rather than :class:`queue.Queue`: the
    queue's contents and the job the writer took are read under one lock, so a Ctrl-C or SIGTERM raised in
    the training thread (between any two bytecodes, in :meth:`submit` too) can never leave a
    job that the writer will write but the callback believes was dropped (a checkpoint on disk
    without its ``checkpoints.csv`` row): :meth:`accepted` looks in the queue itself."""

    def __init__(self, write: Callable[[SaveJob], Any], name: str = "jno-checkpoint") -> None:
        self._write = write
        self._cv = threading.Condition()
        self._q: collections.deque = collections.deque()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: SaveJob | None) -> None:
        """Queue ``job``; blocks while :data:`MAX_QUEUED` jobs wait (back-pressure). ``None``
        ends the thread after the queued jobs."""
        with self._cv:
            while job is not None and len(self._q) >= MAX_QUEUED:
                self._cv.wait()
            self._q.append(job)
            if job is not None:
                job.queued = True
            self._cv.notify_all()

    def accepted(self, job: SaveJob) -> bool:
        """Whether ``job`` reached the queue (so it is, or will be, written): it is in the
        queue or the writer took it. (``job.queued`` alone is not enough: the interrupt may
        land between the append and that flag.)"""
        with self._cv:
            return job.taken or any(j is job for j in self._q)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Finish the queued jobs, then end the thread."""
        if self._thread.is_alive():
            self.submit(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        _lower_priority()
        while True:
            with self._cv:
                while not self._q:
                    self._cv.wait()
                job = self._q.popleft()
                if job is not None:
                    job.taken = True
                self._cv.notify_all()
            if job is None:
                return
            try:
                job.done.set_result(self._write(job))
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread
                job.done.set_exception(exc)
