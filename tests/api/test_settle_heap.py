"""A serving worker freezes what start-up built, so full collections do not walk it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.api.conftest import fill

_PROBE = """
import gc
from ledger.api import app_from_env
tracked = len(gc.get_objects())
app_from_env()
print(tracked, gc.get_freeze_count(), len(gc.get_objects()))
"""


def test_the_worker_factory_freezes_the_start_up_heap(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fill(home, None, 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_HOME=str(home), LEDGER_JUDGE="false")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    before, frozen, left = map(int, done.stdout.split())
    # Everything start-up made is frozen; what the collector still walks is a small rest.
    assert frozen > before
    assert left < frozen / 10
