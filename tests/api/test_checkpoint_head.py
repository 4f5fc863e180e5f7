"""The checkpoint reads are served against: from memory while fresh, one lookup for every request
waiting on an expired head, and with no age allowed, a lookup of its own for each request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.api.service import Service
from ledger.api.settings import ApiSettings
from ledger.errors import StoreError
from ledger.log.store import CheckpointRecord
from tests.api.conftest import fill


@pytest.fixture
def make_service(database_url: str, tmp_path: Path) -> Iterator[Callable[[float], Service]]:
    opened: list[Service] = []

    def factory(age: float) -> Service:
        home = tmp_path / "home"
        if not opened:
            fill(home, database_url, 4)
        settings = ApiSettings(home=home, database_url=database_url, checkpoint_every=0,
                               checkpoint_interval=0, api_checkpoint_age=age)  # fmt: skip
        service = Service(settings)
        opened.append(service)
        return service

    yield factory
    for service in opened:
        service.close()


class GatedLookups:
    """Counts the service's checkpoint lookups; each waits at a gate the test opens."""

    def __init__(self, service: Service, fail_first: bool = False) -> None:
        self.calls = 0
        self.gate = threading.Event()
        self.fail_first = fail_first
        self._lookup = service._current_checkpoint
        self._lock = threading.Lock()

    def __call__(self) -> CheckpointRecord:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        assert self.gate.wait(timeout=60)  # a last guard, never the synchronization
        if first and self.fail_first:
            raise StoreError("the database went away")
        return self._lookup()


def _gated(
    make_service: Callable[[float], Service],
    monkeypatch: pytest.MonkeyPatch,
    age: float,
    fail_first: bool = False,
) -> tuple[Service, GatedLookups]:
    service = make_service(age)
    lookups = GatedLookups(service, fail_first=fail_first)
    monkeypatch.setattr(service, "_current_checkpoint", lookups)
    return service, lookups


async def _waiting(service: Service, count: int, lookups: GatedLookups) -> list[Any]:
    tasks = [asyncio.create_task(service.served_checkpoint()) for _ in range(count)]
    await asyncio.sleep(0)  # one turn of the loop: every task runs to its first await
    lookups.gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_requests_on_an_expired_head_share_one_lookup(
    make_service: Callable[[float], Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, lookups = _gated(make_service, monkeypatch, 30.0)
    results = asyncio.run(_waiting(service, 8, lookups))
    assert lookups.calls == 1
    assert all(r is results[0] for r in results)
    assert results[0].tree_size == 4
    # Fresh now: served from memory, no lookup at all.
    assert asyncio.run(service.served_checkpoint()) is results[0]
    assert lookups.calls == 1


def test_a_failed_lookup_reaches_every_waiter_and_the_next_request_looks_again(
    make_service: Callable[[float], Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, lookups = _gated(make_service, monkeypatch, 30.0, fail_first=True)
    results = asyncio.run(_waiting(service, 5, lookups))
    assert lookups.calls == 1
    assert all(isinstance(r, StoreError) for r in results)
    again = asyncio.run(service.served_checkpoint())
    assert lookups.calls == 2
    assert again.tree_size == 4


def test_with_no_age_allowed_each_request_looks_up_its_own(
    make_service: Callable[[float], Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lookup already in flight may predate an append the later request must see.
    service, lookups = _gated(make_service, monkeypatch, 0.0)
    results = asyncio.run(_waiting(service, 4, lookups))
    assert lookups.calls == 4
    assert all(r.tree_size == 4 for r in results)
