"""`ledger serve` in a child process: started on a port, found ready by polling, killed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

LEDGER = str(Path(sys.executable).with_name("ledger"))


class ServerProcess:
    """One `ledger serve` child; its stdout is read to the end by a thread, stderr to a file."""

    def __init__(
        self,
        home: Path,
        log: Path,
        port: int = 0,
        workers: int = 1,
        database_url: str | None = None,
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env.update(LEDGER_HOME=str(home), LEDGER_API_CHECKPOINT_AGE="0")
        if database_url:
            env["LEDGER_DATABASE_URL"] = database_url
        self._errors = log.open("a")
        self.process = subprocess.Popen(
            [LEDGER, "serve", "--port", str(port), "--workers", str(workers),
             "--log-level", "warning"],
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
            env=env,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self._drain = threading.Thread(target=self.process.stdout.read, daemon=True)
        self._drain.start()
        found = re.search(r"serving on (http://127\.0\.0\.1:(\d+)) ", line)
        if found is None:
            self.stop()
            raise AssertionError(f"ledger serve did not start: {line!r}")
        self.url, self.port = found.group(1), int(found.group(2))
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise
            time.sleep(0.05)  # polling interval of a bounded wait, not a synchronization

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush (a crash)."""
        self.process.send_signal(signal.SIGKILL)
        self._finish()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self._finish()

    def _finish(self) -> None:
        self.process.wait(timeout=30)
        self._drain.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._errors.close()
