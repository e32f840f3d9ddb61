"""The routing vectors: the router sends each write where the Rust router does."""

from __future__ import annotations

from typing import Any

import pytest

from homeward import FixedHome, Router, Writer
from homeward.protocol import Table

from . import vectors
from .fake import Tables

CASES = vectors.load("routing")
REGIONS = ["us-east-1", "us-west-1", "us-west-2", "eu-west-1", "ap-south-1"]


def test_every_strategy_is_covered() -> None:
    assert {c["strategy"].split(":")[0] for c in CASES} == {"attribute", "key-prefix", "stamp", "table"}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_routing_vector(case: dict[str, Any]) -> None:
    t = case["table"]
    table = Table(
        partition_key=t["partition_key"],
        sort_key=t["sort_key"],
        home_attribute=t["home_attribute"],
        ttl_attribute=t["ttl_attribute"],
        retention_seconds=t["retention_seconds"],
    )
    tables = Tables(unreachable=frozenset(case["unreachable"]))
    tables.keys[case["table_name"]] = table.key_attributes()
    stored = vectors.item(case["stored"])
    if stored is not None:
        for region in REGIONS:
            tables.seed(region, case["table_name"], stored)
    writer = Writer(tables.client, case["table_name"], table, clock=lambda _r: 1_764_032_460_000)
    router = Router(
        writer,
        case["local"],
        mode=case["mode"],
        strategy=case["strategy"],
        journal_table=case["table_name"] + "-journal",
        evacuated=case["evacuated"],
    )
    op = case["operation"]
    key = table.key_of(vectors.item(op["item"]) if op["kind"] == "insert" else stored)
    expect = case["expect"]
    if "error" in expect:
        assert expect["error"]["kind"] == "home"
        with pytest.raises(FixedHome):
            router.move_home(key, op["to"])
        return
    if op["kind"] == "insert":
        written = router.insert(vectors.item(op["item"]))
    elif op["kind"] == "update":
        written = router.update(key, {k: vectors.value(v) for k, v in op["set"].items()})
    else:
        written = router.move_home(key, op["to"])
    assert written.region == expect["region"]
    assert written.moved == expect["moved"]
    home = written.version.home
    assert ({"region": home.region, "epoch": home.epoch} if home else None) == expect["home"]
    mirror = t["home_attribute"]
    assert (written.item.get(mirror) if mirror else None) == expect["home_attribute"]
