"""Entry ids: UUIDv7 strings (RFC 9562 section 5.7), made when a request is sent or a body appended.

Invariants:

- An id is the canonical lowercase 36-character UUID text with version 7 and the RFC 9562 variant.
- Its first 48 bits are the Unix time in milliseconds, so ids sort by the time their request left.
- Ids made by one process are strictly increasing: within one millisecond the 12-bit ``rand_a``
  field is used as a counter (RFC 9562 6.2, method 1), seeded randomly each new millisecond. The
  remaining 62 bits come from ``os.urandom``, so ids from different processes do not collide.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["uuid7"]

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_COUNTER_MAX = 0xFFF


def uuid7() -> str:
    """Return a new UUIDv7 as canonical text.

    Example:
        >>> len(uuid7()), uuid7()[14]
        (36, '7')
    """
    global _last_ms, _counter
    rand = int.from_bytes(os.urandom(10), "big")
    ms = time.time_ns() // 1_000_000
    # A lock rather than a lock-free trick: two threads must never hand out the same
    # (ms, counter) pair, and the critical section is a handful of integer operations.
    with _lock:
        if ms > _last_ms:
            _last_ms = ms
            _counter = rand >> 70  # 10 random bits: leaves room to count up within the ms
        else:
            # Same millisecond (or the clock stepped back): keep the last timestamp and count.
            ms = _last_ms
            _counter += 1
            if _counter > _COUNTER_MAX:
                _last_ms += 1
                ms = _last_ms
                _counter = 0
        counter = _counter
    rand_b = rand & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
