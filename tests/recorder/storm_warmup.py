"""Imported once by the kill storms' fork server (``tests/recorder/storm.py``): it loads the
shipped policies, so that every forked child's first commit does not parse and validate them
again (seconds per child). A child still judges each entry itself; it only inherits the parsed
policy files, which are read-only package data."""

from __future__ import annotations

from ledger.policy.loader import default_policies

default_policies()
