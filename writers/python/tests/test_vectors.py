"""The write vectors: the pure protocol writes exactly what the Rust core writes."""

from __future__ import annotations

from typing import Any

import pytest

from homeward import protocol
from homeward.errors import AttributeRefused, WriteRefused
from homeward.protocol import Condition, Home, WriteContext

from . import vectors

CASES = [case for name in vectors.write_files() for case in vectors.load(name)]


def plan(case: dict[str, Any]) -> protocol.Planned:
    table = vectors.table(case["setup"])
    read = vectors.item(case["read"])
    ctx = WriteContext(case["context"]["region"], case["context"]["time_ms"], case["context"]["nonce"])
    home = Home(case["home"]["region"], case["home"]["epoch"]) if case["home"] else None
    op = case["operation"]
    if op["kind"] == "insert":
        return protocol.plan_insert(table, read, vectors.item(op["item"]), ctx, home=home)
    if op["kind"] == "delete":
        return protocol.plan_delete(table, read, ctx)
    assert op["kind"] == "update"

    def change(draft: protocol.Draft) -> None:
        for name, v in op["set"].items():
            draft.set(name, vectors.value(v))
        for name in op["remove"]:
            draft.remove(name)
        for name, delta in op["increment"].items():
            draft.increment(name, delta)

    return protocol.plan_update(table, read, change, ctx, home=home)


def test_there_are_vectors() -> None:
    assert len(CASES) >= 50
    assert {c["name"].split("/")[0] for c in CASES} >= {
        "insert",
        "update",
        "counters",
        "siblings",
        "unstamped",
        "delete",
        "home",
    }


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector(case: dict[str, Any]) -> None:
    expect = case["expect"]
    if "error" in expect:
        with pytest.raises(WriteRefused) as refused:
            plan(case)
        assert refused.value.kind == expect["error"]["kind"]
        if expect["error"]["attribute"] is not None:
            assert isinstance(refused.value, AttributeRefused)
            assert refused.value.attribute == expect["error"]["attribute"]
        return
    planned = plan(case)
    assert vectors.normal(planned.item) == vectors.normal(vectors.item(expect["item"]))
    cond = expect["condition"]
    assert planned.condition == Condition(cond["kind"], cond.get("dot"))
    # The item written decodes back to the version planned.
    table = vectors.table(case["setup"])
    assert protocol.encode(table, protocol.decode(table, planned.item)) == planned.item
