"""The writer and the router against DynamoDB (moto)."""

from __future__ import annotations

import threading
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError

from homeward import (
    REMOVE,
    AlreadyExists,
    Backoff,
    CounterMismatch,
    CounterValue,
    Draft,
    NotFound,
    Router,
    Table,
    Unavailable,
    Writer,
)
from homeward.protocol import UNATTRIBUTED, decode

from .conftest import free_port, make_client

EAST, WEST = "us-east-1", "us-west-1"
TABLE = Table("pk", counters=frozenset({"stock"}), home_attribute="home_region")
KEY = {"pk": {"S": "sku-42"}}


def raw(clients: Callable[[str], Any], region: str, table_name: str) -> Any:
    return clients(region).get_item(TableName=table_name, Key=KEY, ConsistentRead=True).get("Item")


def test_insert_update_delete_revive(clients: Callable[[str], Any], table_name: str) -> None:
    w = Writer(clients, table_name, TABLE)
    first = w.insert(EAST, {**KEY, "name": {"S": "lamp"}, "stock": {"N": "10"}, "old": {"S": "x"}})
    assert first.dot.startswith("us-east-1:1:")
    with pytest.raises(AlreadyExists):
        w.insert(EAST, {**KEY, "name": {"S": "other"}})
    w.update(EAST, KEY, {"name": {"S": "desk lamp"}, "old": REMOVE})
    w.update(EAST, KEY, lambda d: d.set("note", {"S": "n"}))
    w.increment(EAST, KEY, "stock", -3)
    got = w.get(EAST, KEY)
    assert got is not None
    assert got.values == {**KEY, "name": {"S": "desk lamp"}, "note": {"S": "n"}, "stock": {"N": "7"}}
    assert got.dot is not None and got.dot.startswith("us-east-1:4:")
    # What DynamoDB holds decodes (strictly) to the same values.
    assert decode(TABLE, raw(clients, EAST, table_name)).values() == {k: v for k, v in got.values.items() if k != "pk"}

    w.delete(EAST, KEY)
    assert w.get(EAST, KEY) is None
    with pytest.raises(NotFound):
        w.update(EAST, KEY, {"name": {"S": "x"}})
    assert "hw_expires" in raw(clients, EAST, table_name)
    revived = w.insert(EAST, {**KEY, "name": {"S": "lamp"}, "stock": {"N": "1"}})
    assert revived.values == {**KEY, "name": {"S": "lamp"}, "stock": {"N": "1"}}
    assert "hw_expires" not in raw(clients, EAST, table_name)


def test_concurrent_increments_from_two_writers_are_exact(clients: Callable[[str], Any], table_name: str) -> None:
    w1 = Writer(clients, table_name, TABLE, backoff=Backoff(max_attempts=50))
    # The second writer has its own client (its own connections).
    own = make_client(clients(EAST).meta.endpoint_url, EAST)
    w2 = Writer({EAST: own}, table_name, TABLE, backoff=Backoff(max_attempts=50))
    w1.insert(EAST, {**KEY, "stock": {"N": "100"}})
    errors: list[BaseException] = []

    def run(w: Writer, delta: int) -> None:
        try:
            for _ in range(15):
                w.increment(EAST, KEY, "stock", delta)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w1, 2)), threading.Thread(target=run, args=(w2, -1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = w1.get(EAST, KEY)
    assert got is not None and got.values["stock"] == {"N": str(100 + 15 * 2 - 15)}
    # 31 writes of us-east-1: a dot window of 32 holds them all.
    assert got.version.known[EAST] and max(t.counter for t in got.version.known[EAST]) == 31


def test_a_failed_condition_is_retried_on_the_new_version(clients: Callable[[str], Any], table_name: str) -> None:
    w = Writer(clients, table_name, TABLE)
    other = Writer(clients, table_name, TABLE)
    w.insert(EAST, {**KEY, "a": {"S": "1"}, "b": {"S": "1"}})
    calls = []

    def change(draft: Draft) -> None:
        calls.append(draft.get("b"))
        if len(calls) == 1:
            # Another writer gets in between this read and its put.
            other.update(EAST, KEY, {"b": {"S": "2"}})
        draft.set("a", {"S": "changed"})

    written = w.update(EAST, KEY, change)
    assert calls == [{"S": "1"}, {"S": "2"}]
    assert written.values["a"] == {"S": "changed"} and written.values["b"] == {"S": "2"}


def test_an_unstamped_item_is_adopted(clients: Callable[[str], Any], table_name: str) -> None:
    clients(EAST).put_item(TableName=table_name, Item={**KEY, "name": {"S": "legacy"}, "stock": {"N": "5"}})
    w = Writer(clients, table_name, TABLE)
    before = w.get(EAST, KEY)
    assert before is not None and before.dot is None
    assert before.values["stock"] == {"N": "5"}
    written = w.update(EAST, KEY, lambda d: d.increment("stock", 2).set("name", {"S": "adopted"}))
    assert written.values == {**KEY, "name": {"S": "adopted"}, "stock": {"N": "7"}}
    stored = raw(clients, EAST, table_name)
    assert stored["_hw"]["M"]["dot"]["S"] == written.dot
    # The legacy value is the unattributed origin's contribution, the increment this Region's.
    counter = decode(TABLE, stored).counters["stock"]
    assert counter[UNATTRIBUTED].total() == 5 and counter[EAST].total() == 2


def test_a_plain_writers_edits_are_adopted(clients: Callable[[str], Any], table_name: str) -> None:
    """boto3's own UpdateItem (no stamp) on a stamped item: the writer's reads
    take its edits in as `unattributed` ones, and its next write records them."""
    w = Writer(clients, table_name, TABLE)
    w.insert(EAST, {**KEY, "name": {"S": "lamp"}, "stock": {"N": "1"}})
    clients(EAST).update_item(
        TableName=table_name,
        Key=KEY,
        UpdateExpression="SET color = :c ADD stock :five",
        ExpressionAttributeValues={":c": {"S": "red"}, ":five": {"N": "5"}},
    )
    got = w.get(EAST, KEY)
    assert got is not None
    assert got.values["color"] == {"S": "red"} and got.values["stock"] == {"N": "6"}
    assert len(got.version.known[UNATTRIBUTED]) == 2  # color's dot and stock's slot
    written = w.increment(EAST, KEY, "stock", -2)
    assert written.values["stock"] == {"N": "4"} and written.values["color"] == {"S": "red"}
    stored = decode(TABLE, raw(clients, EAST, table_name))  # the stamp is whole again
    assert stored.known[UNATTRIBUTED] == got.version.known[UNATTRIBUTED]
    assert stored.counters["stock"][UNATTRIBUTED].total() == 5

    clients(EAST).update_item(
        TableName=table_name,
        Key=KEY,
        UpdateExpression="SET stock = :s",
        ExpressionAttributeValues={":s": {"S": "private text"}},
    )
    with pytest.raises(CounterMismatch) as e:
        w.update(EAST, KEY, {"name": {"S": "x"}})
    assert e.value.kind == "stamp" and e.value.attribute == "stock" and "private text" not in str(e.value)


def test_routing_falls_back_when_the_home_does_not_answer(
    clients: Callable[[str], Any], table_name: str, moto_url: str
) -> None:
    dead = make_client(f"http://127.0.0.1:{free_port()}", WEST, connect_timeout=1, read_timeout=1)

    def regional(region: str) -> Any:
        return dead if region == WEST else clients(region)

    Writer(clients, table_name, TABLE).insert(EAST, {**KEY, "home_region": {"S": WEST}, "name": {"S": "a"}})
    router = Router(Writer(regional, table_name, TABLE), EAST, journal_table=f"{table_name}-journal")
    written = router.update(KEY, {"name": {"S": "b"}})
    assert written.region == EAST and not written.moved
    assert raw(clients, EAST, table_name)["name"] == {"S": "b"}
    # With the home answering, the write goes there.
    Writer(clients, table_name, TABLE).insert(WEST, {**KEY, "home_region": {"S": WEST}, "name": {"S": "a"}})
    up = Router(Writer(clients, table_name, TABLE), EAST, journal_table=f"{table_name}-journal")
    assert up.update(KEY, {"name": {"S": "c"}}).region == WEST
    assert raw(clients, WEST, table_name)["name"] == {"S": "c"}


def test_an_evacuated_home_is_read_from_the_control_item_and_moves(
    clients: Callable[[str], Any], table_name: str
) -> None:
    clients(EAST).put_item(
        TableName=f"{table_name}-journal",
        Item={"pk": {"S": "homeward:control"}, "sk": {"S": "evacuated"}, "regions": {"L": [{"S": WEST}]}},
    )
    w = Writer(clients, table_name, TABLE)
    w.insert(EAST, {**KEY, "home_region": {"S": WEST}, "name": {"S": "a"}})
    router = Router(w, EAST, journal_table=f"{table_name}-journal")
    assert router.evacuated() == {WEST}
    written = router.update(KEY, {"name": {"S": "b"}})
    assert (written.region, written.moved) == (EAST, True)
    assert written.home is not None and (written.home.region, written.home.epoch) == (EAST, 1)
    assert raw(clients, EAST, table_name)["home_region"] == {"S": EAST}


class Throttling:
    """A client whose first ``fail`` puts are throttled."""

    def __init__(self, inner: Any, fail: int) -> None:
        self.inner = inner
        self.fail = fail
        self.puts = 0

    def get_item(self, **request: Any) -> Any:
        return self.inner.get_item(**request)

    def put_item(self, **request: Any) -> Any:
        self.puts += 1
        if self.puts <= self.fail:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutItem"
            )
        return self.inner.put_item(**request)


def test_throttling_is_retried_then_reported(clients: Callable[[str], Any], table_name: str) -> None:
    slow = Throttling(clients(EAST), fail=3)
    w = Writer({EAST: slow}, table_name, TABLE, backoff=Backoff(max_attempts=5, base=0.001))
    w.insert(EAST, {**KEY, "name": {"S": "a"}})
    assert slow.puts == 4
    never = Throttling(clients(EAST), fail=1000)
    w = Writer({EAST: never}, table_name, TABLE, backoff=Backoff(max_attempts=3, base=0.001))
    with pytest.raises(Unavailable) as e:
        w.update(EAST, KEY, {"name": {"S": "secret-value"}})
    assert e.value.region == EAST and "secret-value" not in str(e.value)


def test_errors_never_show_values(clients: Callable[[str], Any], table_name: str) -> None:
    w = Writer(clients, table_name, TABLE)
    w.insert(EAST, {**KEY, "stock": {"N": "1"}})
    with pytest.raises(CounterValue) as e:
        w.update(EAST, KEY, {"stock": {"S": "private text"}})
    assert "private text" not in str(e.value) and e.value.attribute == "stock"
