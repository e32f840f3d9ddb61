"""The conform adapter (``python -m homeward.conform``) against moto: lines in, lines out."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from typing import Any, Callable

from homeward.conform import Adapter, serve
from homeward.protocol import Table, decode

from .conftest import make_client

EAST = "us-east-1"
CONFIGURE = {
    "id": 0,
    "op": "configure",
    "protocol": 1,
    "table": {
        "partition_key": "pk",
        "sort_key": None,
        "stamp_attribute": "_hw",
        "ttl_attribute": "hw_expires",
        "retention_seconds": 604800,
        "home_attribute": None,
    },
    "rules": {"attributes": {"n": "counter", "tags": "union"}},
    "dot_window": 32,
    "home_strategy": "attribute:home_region",
    "clock_skew_ms": {EAST: 1500},
}
TABLE = Table("pk", counters=frozenset({"n"}))


def run(lines: list[Any], moto_url: str) -> list[dict[str, Any]]:
    stdin = io.StringIO("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    stdout = io.StringIO()
    assert serve(stdin, stdout, Adapter(lambda region, _endpoint: make_client(moto_url, region))) == 0
    return [json.loads(line) for line in stdout.getvalue().splitlines()]


def op(rid: int, name: str, table_name: str, moto_url: str, **fields: Any) -> dict[str, Any]:
    return {"id": rid, "op": name, "region": EAST, "endpoint": moto_url, "table": table_name, **fields}


def test_operations_answer_the_version_written(clients: Callable[[str], Any], table_name: str, moto_url: str) -> None:
    key = {"pk": {"S": "k0"}}
    started = time.time_ns() // 1_000_000
    answers = run(
        [
            CONFIGURE,
            op(1, "insert", table_name, moto_url, item={**key, "a": {"S": "init"}, "n": {"N": "0"}}),
            op(2, "update", table_name, moto_url, key=key, set={"b": {"S": "x"}}, remove=["a"]),
            op(3, "update", table_name, moto_url, key=key, add={"tags": {"SS": ["t1", "t2"]}}),
            op(4, "update", table_name, moto_url, key=key, add={"tags": {"SS": ["t2", "t3"]}}),
            op(5, "increment", table_name, moto_url, key=key, attribute="n", by=-3),
            op(6, "get", table_name, moto_url, key=key),
            op(7, "delete", table_name, moto_url, key=key),
            op(8, "get", table_name, moto_url, key=key),
        ],
        moto_url,
    )
    ended = time.time_ns() // 1_000_000
    assert [a["id"] for a in answers] == list(range(9))
    assert answers[0] == {"id": 0, "ok": {"writer": "homeward-python 0.1.0"}}
    versions = [decode(TABLE, a["ok"]["version"]) for a in answers[1:6]]
    for n, (a, v) in enumerate(zip(answers[1:6], versions), start=1):
        assert a["ok"]["dot"] == v.header.dot()
        assert a["ok"]["dot"].startswith(f"{EAST}:{n}:")
    assert versions[1].values() == {"b": {"S": "x"}, "n": {"N": "0"}}
    assert versions[3].values()["tags"] == {"SS": ["t1", "t2", "t3"]}
    assert versions[4].values()["n"] == {"N": "-3"}
    # The clock skew of the Region is in the stamp's time.
    assert started + 1500 <= versions[0].header.time_ms <= ended + 1500
    # get answers what is stored; a soft-deleted item reads as none.
    stored = clients(EAST).get_item(TableName=table_name, Key=key, ConsistentRead=True)["Item"]
    assert answers[6]["ok"]["dot"] == answers[5]["ok"]["dot"]
    assert answers[6]["ok"]["version"]["_hw"] == answers[5]["ok"]["version"]["_hw"]
    deleted = decode(TABLE, stored)
    assert deleted.header.dot() == answers[7]["ok"]["dot"]
    assert "hw_expires" in answers[7]["ok"]["version"]
    assert answers[8] == {"id": 8, "ok": {"version": None, "dot": None}}


def test_errors_are_typed_and_the_loop_goes_on(table_name: str, moto_url: str) -> None:
    key = {"pk": {"S": "k1"}}
    answers = run(
        [
            op(1, "get", table_name, moto_url, key=key),
            CONFIGURE,
            op(2, "update", table_name, moto_url, key=key, set={"a": {"S": "x"}}),
            op(3, "insert", table_name, moto_url, item={**key, "a": {"S": "x"}}),
            op(4, "insert", table_name, moto_url, item={**key, "a": {"S": "y"}}),
            op(5, "increment", table_name, moto_url, key=key, attribute="a", by=1),
            op(6, "update", table_name, moto_url, key=key, set={"n": {"S": "many"}}),
            "{not json",
            op(7, "rename", table_name, moto_url, key=key),
            {**CONFIGURE, "id": 8, "protocol": 2},
            op(9, "get", table_name, moto_url, key=key),
        ],
        moto_url,
    )
    kinds = [(a["id"], a.get("error", {}).get("kind")) for a in answers]
    assert kinds == [
        (1, "protocol"),
        (0, None),
        (2, "not_found"),
        (3, None),
        (4, "already_exists"),
        (5, "not_a_counter"),
        (6, "counter_value"),
        (None, "protocol"),
        (7, "protocol"),
        (8, "config"),
        (9, None),
    ]
    assert answers[5]["error"]["attribute"] == "a"
    assert answers[6]["error"]["attribute"] == "n"


def test_runs_as_a_module(table_name: str, moto_url: str) -> None:
    """`python -m homeward.conform` reads stdin to EOF and exits 0."""
    lines = [CONFIGURE, op(1, "insert", table_name, moto_url, item={"pk": {"S": "k2"}, "b": {"B": "AAEC"}})]
    done = subprocess.run(
        [sys.executable, "-m", "homeward.conform"],
        input="".join(json.dumps(x) + "\n" for x in lines),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert answers[0]["ok"]["writer"].startswith("homeward-python")
    assert answers[1]["ok"]["version"]["b"] == {"B": "AAEC"}


def test_get_of_an_unstamped_item_answers_its_adopted_version(
    clients: Callable[[str], Any], table_name: str, moto_url: str
) -> None:
    key = {"pk": {"S": "legacy"}}
    clients(EAST).put_item(TableName=table_name, Item={**key, "a": {"S": "x"}})
    answers = run([CONFIGURE, op(1, "get", table_name, moto_url, key=key)], moto_url)
    version = decode(TABLE, answers[1]["ok"]["version"])
    assert answers[1]["ok"]["dot"] == version.header.dot()
    assert version.values() == {"a": {"S": "x"}}
