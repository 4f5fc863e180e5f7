"""Worker interpreters for CPU-bound passes over the log, started without the caller's script.

``multiprocessing`` (spawn and forkserver alike) imports the parent's ``__main__`` again in
every child. A script that calls ``Ledger.verify()`` at top level, without an
``if __name__ == "__main__":`` guard, would then run a second time in each worker: its teacher
calls and its appends included, before the pool broke. Fork is no way out either: the ledger's
writer thread may hold a lock at the moment of the fork. So a worker here is a plain child
interpreter running ``_worker_main.py`` in isolated mode (``-I``), which imports only the
module named by its first request.

Invariants:

* ``map`` hands results back in task order, whichever worker ran a task; each worker runs one
  task at a time and takes the next one as soon as it is done. ``run`` hands one task to one
  named worker, for callers that keep their own queue (one driving thread per worker);
  ``send`` and ``receive`` split it in two, so that such a caller can keep the next task
  waiting in the worker's pipe.
* A task that raises in a worker raises the same exception from ``map`` (re-raised in the
  caller; one that cannot be pickled arrives as ``WorkerError`` with its text). A worker that
  dies raises ``WorkerError``. Either way every worker is stopped before ``map``'s caller sees
  the error.
* Workers exit when their stdin closes: when the pool closes, or when the parent dies.
* Nothing crosses the pipe but pickles the parent made and the worker's replies; the worker's
  own ``print`` output goes to stderr, so stdout carries the protocol only.

Wire format: each frame is a 4-byte big-endian length and a pickle. The first request is
``(sys.path, "module:initializer", initargs, "module:function")``, answered ``(True, None)``
once the initializer ran; each later request is one task, answered ``(True, result)`` or
``(False, exception)``.
"""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from ledger.errors import LedgerError

__all__ = ["WorkerError", "WorkerPool"]

_U32 = struct.Struct(">I")
_WORKER_SCRIPT = Path(__file__).with_name("_worker_main.py")


class WorkerError(LedgerError):
    """A worker process could not start, died, or failed in a way that cannot be re-raised."""


def write_frame(stream: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_U32.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame's value; ``EOFError`` when the stream ends (cleanly or mid-frame)."""
    head = _read_exactly(stream, 4)
    return pickle.loads(_read_exactly(stream, _U32.unpack(head)[0]))  # noqa: S301 - our own child


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    parts = []
    while size:
        data = stream.read(size)
        if not data:
            raise EOFError("pipe closed")
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


class _Worker:
    def __init__(self, function: str, initializer: str, initargs: tuple[Any, ...]) -> None:
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                [sys.executable, "-I", str(_WORKER_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
            )
        except OSError as exc:
            raise WorkerError(f"cannot start a worker process: {exc}") from exc
        self._header = (list(sys.path), initializer, initargs, function)
        self._pending_init = False  # set by start(): the first call reads the init reply

    def start(self) -> None:
        """Send the first request; the reply is read by ``call``'s first use."""
        assert self.proc.stdin is not None  # noqa: S101 - Popen made the pipe
        try:
            write_frame(self.proc.stdin, self._header)
        except OSError as exc:
            raise self._died() from exc
        self._pending_init = True

    def call(self, task: object) -> Any:
        self.send(task)
        return self.receive()

    def send(self, task: object) -> None:
        """Hand over one task (the first one waits for the initializer's answer)."""
        stdin, stdout = self.proc.stdin, self.proc.stdout
        assert stdin is not None  # noqa: S101 - Popen made the pipe
        assert stdout is not None  # noqa: S101 - Popen made the pipe
        try:
            if self._pending_init:
                self._pending_init = False
                self._unpack(read_frame(stdout))
            write_frame(stdin, task)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            raise self._died() from exc

    def receive(self) -> Any:
        """The result of the oldest task sent and not yet answered."""
        stdout = self.proc.stdout
        assert stdout is not None  # noqa: S101 - Popen made the pipe
        try:
            return self._unpack(read_frame(stdout))
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            raise self._died() from exc

    @staticmethod
    def _unpack(reply: tuple[bool, Any]) -> Any:
        ok, value = reply
        if ok:
            return value
        if isinstance(value, BaseException):
            raise value
        raise WorkerError(str(value))

    def _died(self) -> WorkerError:
        try:
            state = f"exited with code {self.proc.wait(timeout=2)}"
        except subprocess.TimeoutExpired:
            state = "stopped answering"
        return WorkerError(f"a worker process {state} unexpectedly (see its output above)")

    def hang_up(self) -> None:
        """Close the worker's stdin: it exits once its current task is done."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass

    def stop(self) -> None:
        self.hang_up()
        try:
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


class WorkerPool:
    """``workers`` child interpreters that each run ``function`` on the tasks they are given.

    Args:
        workers: how many processes.
        function: ``"module:name"`` of the task function (module-level, picklable results).
        initializer: ``"module:name"`` run once in each worker with ``initargs``.
        initargs: picklable arguments for the initializer.
    """

    def __init__(
        self, workers: int, function: str, initializer: str, initargs: tuple[Any, ...] = ()
    ) -> None:
        self._workers: list[_Worker] = []
        try:
            for _ in range(max(1, workers)):
                self._workers.append(_Worker(function, initializer, initargs))
            for worker in self._workers:
                worker.start()  # all workers import and initialize at the same time
        except BaseException:
            self.close()
            raise

    def map(self, tasks: Sequence[Any]) -> Iterator[Any]:
        """Results of the tasks, in task order; workers run ahead of the consumer."""
        results: dict[int, Any] = {}
        failure: list[BaseException] = []
        cond = threading.Condition()
        cursor = iter(range(len(tasks)))

        def drive(worker: _Worker) -> None:
            while True:
                with cond:
                    index = next(cursor, None)
                    if index is None or failure:
                        return
                try:
                    result = worker.call(tasks[index])
                except BaseException as exc:
                    with cond:
                        failure.append(exc)
                        cond.notify_all()
                    return
                with cond:
                    results[index] = result
                    cond.notify_all()

        threads = [threading.Thread(target=drive, args=(w,), daemon=True) for w in self._workers]
        for thread in threads:
            thread.start()
        try:
            for index in range(len(tasks)):
                with cond:
                    cond.wait_for(lambda i=index: i in results or bool(failure))  # type: ignore[misc]
                    if index not in results:
                        raise failure[0]
                    result = results.pop(index)
                yield result
        finally:
            with cond:
                failure.append(WorkerError("stopped"))  # no new tasks for the drivers
            if any(thread.is_alive() for thread in threads):
                # A consumer that stopped early: workers end after their current task.
                for worker in self._workers:
                    worker.hang_up()
            for thread in threads:
                thread.join()

    @property
    def size(self) -> int:
        """How many workers the pool holds (0 once closed)."""
        return len(self._workers)

    def run(self, worker: int, task: object) -> Any:
        """Run one task on worker number ``worker`` and return its result.

        For callers that feed workers from their own queue (one thread per worker): a worker
        runs one task at a time, so each worker must be driven by one thread only, and never
        while :meth:`map` is running. Errors are raised as in :meth:`map`; a worker that died
        raises ``WorkerError`` (the others go on).
        """
        return self._workers[worker].call(task)

    def send(self, worker: int, task: object) -> None:
        """Queue one task on worker ``worker`` without waiting for its result.

        With :meth:`receive`, a driving thread can keep a second task waiting in the worker's
        pipe, so the worker starts it the moment the first is done instead of waiting for
        the thread to get the GIL back. Results come back in the order sent. Only for small
        results: a worker blocked writing a large answer while the thread is blocked writing
        the next task would wait for each other.
        """
        self._workers[worker].send(task)

    def receive(self, worker: int) -> Any:
        """Worker ``worker``'s oldest result not yet received (errors as :meth:`run`)."""
        return self._workers[worker].receive()

    def close(self) -> None:
        """Stop every worker (each finishes nothing further once its stdin is closed)."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
