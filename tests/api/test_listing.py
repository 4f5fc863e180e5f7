"""Entry listings: every filter, the scope, cursors across pages, and the page proofs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.crypto import multiproof
from ledger.crypto.canonical import canonical_json
from ledger.crypto.merkle import leaf_hash
from ledger.log.records import parse_timestamp
from tests.api.conftest import Served, ServeFactory, body


def _all(served: Served, who: str = "auditor", **params: Any) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        query = {**params, "limit": 3, **({"cursor": cursor} if cursor else {})}
        answer = served.client.get("/v1/entries", params=query, headers=served.headers(who))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        proof = multiproof.MultiProof.from_dict(page["multiproof"])
        leaves = {i["leaf_index"]: leaf_hash(canonical_json(i["entry"])) for i in page["entries"]}
        multiproof.verify(proof, leaves, bytes.fromhex(page["checkpoint"]["root_hash"]))
        items += page["entries"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _ns(items: list[dict[str, Any]]) -> list[int]:
    return [i["entry"]["body"]["n"] for i in items]


def test_each_filter_selects_what_the_bodies_say(served: Served) -> None:
    bodies = [body(n) for n in range(12)]
    for params, keep in [
        ({}, lambda b: True),
        ({"dataset": "alpha"}, lambda b: b["dataset"] == "alpha"),
        ({"provider": "anthropic"}, lambda b: b["provider"] == "anthropic"),
        ({"model": "gpt-4o-mini"}, lambda b: b["request_model"] == "gpt-4o-mini"),
        ({"account": "acct1"}, lambda b: b["account"] == "acct1"),
        ({"purpose": "research"}, lambda b: False),
        ({"dataset": "beta", "provider": "openai"},
         lambda b: b["dataset"] == "beta" and b["provider"] == "openai"),
    ]:  # fmt: skip
        assert _ns(_all(served, **params)) == [b["n"] for b in bodies if keep(b)], params


def test_time_range_filters_on_recorded_at(served: Served) -> None:
    items = _all(served)
    times = [parse_timestamp(i["entry"]["body"]["recorded_at"]) for i in items]
    middle = times[6]
    later = _all(served, since=middle.isoformat())
    assert _ns(later) == [n for n, t in zip(_ns(items), times, strict=True) if t >= middle]
    earlier = _all(served, until=middle.isoformat())
    assert _ns(earlier) == [n for n, t in zip(_ns(items), times, strict=True) if t < middle]
    future = datetime.now(UTC) + timedelta(days=1)
    assert _all(served, since=future.isoformat()) == []


def test_verdict_filter_uses_each_entrys_latest_verdict(served: Served) -> None:
    store = served.app.state.service.reader.store
    latest: dict[int, Any] = {}
    for row in store.verdicts(0):
        if row.leaf_index not in latest or row.evaluated_at >= latest[row.leaf_index].evaluated_at:
            latest[row.leaf_index] = row
    assert latest  # the fixture's ledger judged its entries
    for verdict in ("allowed", "conditional", "prohibited", "unknown"):
        expected = sorted(i for i, row in latest.items() if row.verdict == verdict)
        assert [i["leaf_index"] for i in _all(served, verdict=verdict)] == expected


def test_a_scoped_token_lists_only_its_datasets(served: Served) -> None:
    assert _ns(_all(served, "scoped_beta")) == [n for n in range(12) if n % 2 == 1]
    assert _ns(_all(served, "scoped_beta", provider="openai")) == [1, 5, 7, 11]


def test_conduct_uses_the_configured_thresholds(serve: ServeFactory, tmp_path: Path) -> None:
    config = tmp_path / "conduct.yaml"
    config.write_text("multi_account_min_accounts: 5\n")
    served = serve(conduct_config=config)
    answer = served.client.get("/v1/audit/conduct", headers=served.headers("auditor")).json()
    assert answer["thresholds"]["multi_account_min_accounts"] == 5
    assert answer["entries_examined"] == 12


def test_a_bad_conduct_config_fails_at_start_up(tmp_path: Path) -> None:
    from ledger.api import create_app
    from ledger.errors import ConfigError
    from tests.api.conftest import api_settings, fill

    home = tmp_path / "home"
    fill(home, None, 1)
    config = tmp_path / "conduct.yaml"
    config.write_text("no_such_threshold: 1\n")
    with pytest.raises(ConfigError, match="conduct config"):
        create_app(api_settings(home, f"sqlite:///{home / 'ledger.db'}", conduct_config=config))
