"""An in-memory stand-in for boto3 DynamoDB clients of several Regions: the
three conditions the writer sends, and Regions that do not answer."""

from __future__ import annotations

import copy
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError


class Tables:
    """Every Region's copy of every table."""

    def __init__(self, unreachable: frozenset[str] = frozenset()) -> None:
        self.items: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.unreachable = unreachable
        self.keys: dict[str, tuple[str, ...]] = {}

    def client(self, region: str) -> FakeClient:
        return FakeClient(self, region)

    def key_text(self, table: str, item: dict[str, Any]) -> str:
        names = self.keys.get(table, ("pk", "sk"))
        return repr([(n, item[n]) for n in names if n in item])

    def seed(self, region: str, table: str, item: dict[str, Any]) -> None:
        self.items[(region, table, self.key_text(table, item))] = copy.deepcopy(item)


class FakeClient:
    def __init__(self, tables: Tables, region: str) -> None:
        self.tables = tables
        self.region = region

    def _up(self) -> None:
        if self.region in self.tables.unreachable:
            raise EndpointConnectionError(endpoint_url=f"https://dynamodb.{self.region}.amazonaws.com")

    def get_item(self, TableName: str, Key: dict[str, Any], ConsistentRead: bool = False) -> dict[str, Any]:
        self._up()
        found = self.tables.items.get((self.region, TableName, self.tables.key_text(TableName, Key)))
        return {"Item": copy.deepcopy(found)} if found is not None else {}

    def put_item(self, TableName: str, Item: dict[str, Any], **condition: Any) -> dict[str, Any]:
        self._up()
        slot = (self.region, TableName, self.tables.key_text(TableName, Item))
        current = self.tables.items.get(slot)
        expression = condition.get("ConditionExpression")
        names = condition.get("ExpressionAttributeNames", {})
        ok = True
        if expression == "attribute_not_exists(#pk)":
            ok = current is None
        elif expression == "attribute_exists(#pk) AND attribute_not_exists(#hw)":
            ok = current is not None and names["#hw"] not in current
        elif expression == "attribute_exists(#pk) AND #hw.#dot = :dot":
            stamp = (current or {}).get(names["#hw"], {}).get("M", {})
            ok = current is not None and stamp.get("dot") == condition["ExpressionAttributeValues"][":dot"]
        elif expression is not None:
            raise AssertionError(f"unexpected condition {expression}")
        if not ok:
            raise ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": "failed"}}, "PutItem")
        self.tables.items[slot] = copy.deepcopy(Item)
        return {}
