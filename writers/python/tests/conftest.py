"""moto on a free loopback port, started once per test session."""

from __future__ import annotations

import functools
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any, Callable

import boto3
import pytest
from botocore.config import Config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _atomic_writes() -> None:
    """moto checks a condition and writes without a lock, so two requests
    served by two threads can both pass one condition; DynamoDB's
    conditional writes are atomic. Serialize moto's writes as DynamoDB does."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "get_item"):
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "_homeward_locked", False):
            continue

        def locked(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(*args, **kwargs)

        functools.update_wrapper(locked, original)
        locked._homeward_locked = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, locked)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    _atomic_writes()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def make_client(url: str, region: str, **config: Any) -> Any:
    return boto3.client(
        "dynamodb",
        region_name=region,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 2}, **config),
    )


@pytest.fixture
def clients(moto_url: str) -> Callable[[str], Any]:
    cache: dict[str, Any] = {}

    def client(region: str) -> Any:
        if region not in cache:
            cache[region] = make_client(moto_url, region)
        return cache[region]

    return client


@pytest.fixture
def table_name(clients: Callable[[str], Any]) -> str:
    """A fresh table (pk S) in us-east-1 and us-west-1, and its journal table."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    for region in ("us-east-1", "us-west-1"):
        clients(region).create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        clients(region).create_table(
            TableName=f"{name}-journal",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    return name
