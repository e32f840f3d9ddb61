"""The write vectors: the pure protocol writes exactly what the Rust core writes."""

from __future__ import annotations

from typing import Any

import pytest

from homeward import protocol
from homeward.errors import AttributeRefused, CounterMismatch, WriteRefused
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
        "adopt",
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
            # A refusal about an attribute names it (a counter a plain writer
            # broke is a stamp error that names its attribute too).
            assert isinstance(refused.value, (AttributeRefused, CounterMismatch))
            assert refused.value.attribute == expect["error"]["attribute"]
        return
    planned = plan(case)
    assert vectors.normal(planned.item) == vectors.normal(vectors.item(expect["item"]))
    cond = expect["condition"]
    assert planned.condition == Condition(cond["kind"], cond.get("dot"))
    # The item written decodes back to the version planned.
    table = vectors.table(case["setup"])
    assert protocol.encode(table, protocol.decode(table, planned.item)) == planned.item


ADOPTIONS = [case for case in CASES if "adoption" in case]


def test_there_are_adoption_vectors() -> None:
    assert len([c for c in ADOPTIONS if c["name"].startswith("adopt/")]) >= 6
    assert any(c["adoption"]["slot"] for c in ADOPTIONS) and any(c["adoption"]["register"] for c in ADOPTIONS)


@pytest.mark.parametrize("case", ADOPTIONS, ids=[c["name"] for c in ADOPTIONS])
def test_adoption(case: dict[str, Any]) -> None:
    """The adoption as the vector spells it out: attributes, nonce texts, dots."""
    table = vectors.table(case["setup"])
    read = vectors.item(case["read"])
    adoption = case["adoption"]
    adopted = protocol.adopt_plain(table, read)
    assert adopted.attributes == adoption["attributes"]
    assert adopted.dot is not None
    assert f"{adopted.dot.region}:{adopted.dot.tick.encode()}" == adoption["dot"]
    known = {f"{protocol.UNATTRIBUTED}:{t.encode()}" for t in adopted.version.known[protocol.UNATTRIBUTED]}
    base = protocol.decode_lenient(table, read)[0].header.dot() if table.stamp_attribute in read else ""
    counters = table.counters | set(protocol.decode_lenient(table, read)[0].counters if base else ())
    registers = {n: read[n] for n in adopted.attributes if n not in counters}
    for part, edits in (("register", registers), ("slot", {})):
        if adoption[part] is None:
            continue
        text = protocol.adoption_text(base, edits)
        assert text == adoption[part]["text"]
        assert adoption[part]["dot"].endswith(":" + protocol.base36(protocol.fnv1a32(text.encode())))
        assert adoption[part]["dot"] in known


def test_adoption_messages_name_no_value() -> None:
    """A counter a plain writer broke: the error names the attribute and the
    value's type, never the value."""
    case = next(c for c in CASES if c["name"] == "adopt/counter-not-a-number")
    table = vectors.table(case["setup"])
    read = vectors.item(case["read"])
    read["stock"] = {"S": "secret-value-42"}
    with pytest.raises(CounterMismatch) as refused:
        protocol.adopt_plain(table, read)
    assert "secret-value-42" not in str(refused.value)
    assert refused.value.attribute == "stock"
    assert refused.value.kind == "stamp"
