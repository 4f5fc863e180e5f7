"""``python -m ledger.testing --port 0``: serve the stand-in teacher API in this process."""

from __future__ import annotations

import sys

from ledger.testing.fake_provider import main

sys.exit(main())
