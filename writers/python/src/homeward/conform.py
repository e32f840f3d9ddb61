"""The Python writer behind ``homeward-sim conform``: JSON lines in, JSON lines out.

Run as ``python -m homeward.conform``. The simulator writes one request per
line on stdin and waits for its answer on stdout (the protocol is in
``conformance/README.md``, "conform: testing a writer of your own"). Each
operation is made with :class:`homeward.Writer` through a boto3 client per
(Region, endpoint), with dummy credentials: the endpoint is a local moto.
Nothing but answers is written to stdout; diagnostics go to stderr.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import traceback
from collections.abc import Mapping
from typing import IO, Any, Callable, Optional

from .errors import AttributeRefused, Contended, HomewardError, StampError, TooLarge
from .protocol import Draft, Item, Table, encode
from .writer import Backoff, Writer

PROTOCOL = 1
WRITER = "homeward-python 0.1.0"


class ProtocolError(Exception):
    """A request this adapter cannot understand (kind ``protocol``)."""


class ConfigurationError(Exception):
    """A ``configure`` request that cannot be used (kind ``config``)."""


# -- DynamoDB JSON (B as base64 text) <-> boto3's client form (B as bytes) ----------


def from_json(value: Any) -> Any:
    """One attribute value as the protocol writes it -> as boto3's client takes it."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ProtocolError("an attribute value is an object with one type key")
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in inner]}
    if kind == "M":
        return {"M": {k: from_json(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [from_json(v) for v in inner]}
    if kind not in ("S", "N", "BOOL", "NULL", "SS", "NS"):
        raise ProtocolError(f"unknown attribute type `{kind}`")
    return {kind: inner}


def to_json(value: Any) -> Any:
    """One attribute value as boto3 hands it -> as the protocol writes it."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(bytes(inner)).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(bytes(b)).decode("ascii") for b in inner]}
    if kind == "M":
        return {"M": {k: to_json(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [to_json(v) for v in inner]}
    return {kind: inner}


def item_from_json(item: Any, what: str) -> Item:
    if not isinstance(item, Mapping):
        raise ProtocolError(f"`{what}` is an object of attribute values")
    return {str(k): from_json(v) for k, v in item.items()}


def item_to_json(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: to_json(v) for k, v in item.items()}


# -- the adapter ---------------------------------------------------------------------


def _default_client(region: str, endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 3},
            connect_timeout=5,
            read_timeout=10,
        ),
    )


class Adapter:
    """Answers the conform protocol's requests with :class:`Writer` calls."""

    def __init__(self, make_client: Callable[[str, str], Any] = _default_client) -> None:
        self.make_client = make_client
        self.clients: dict[tuple[str, str], Any] = {}
        self.writers: dict[tuple[str, str], Writer] = {}
        self.table: Optional[Table] = None
        self.skews: dict[str, int] = {}

    def client(self, region: str, endpoint: str) -> Any:
        key = (region, endpoint)
        if key not in self.clients:
            self.clients[key] = self.make_client(region, endpoint)
        return self.clients[key]

    def writer(self, request: Mapping[str, Any]) -> tuple[Writer, str]:
        if self.table is None:
            raise ProtocolError("an operation before `configure`")
        region, endpoint, table_name = (_text(request, f) for f in ("region", "endpoint", "table"))
        key = (table_name, endpoint)
        if key not in self.writers:
            skews = self.skews
            self.writers[key] = Writer(
                lambda r: self.client(r, endpoint),
                table_name,
                self.table,
                backoff=Backoff(),
                clock=lambda r: time.time_ns() // 1_000_000 + skews.get(r, 0),
            )
        return self.writers[key], region

    def configure(self, request: Mapping[str, Any]) -> dict[str, Any]:
        if request.get("protocol") != PROTOCOL:
            raise ConfigurationError(f"protocol {request.get('protocol')!r} is not {PROTOCOL}")
        t = request.get("table")
        if not isinstance(t, Mapping):
            raise ConfigurationError("`table` is an object")
        try:
            self.table = Table(
                partition_key=str(t["partition_key"]),
                sort_key=None if t.get("sort_key") is None else str(t["sort_key"]),
                stamp_attribute=str(t.get("stamp_attribute", "_hw")),
                ttl_attribute=str(t.get("ttl_attribute", "hw_expires")),
                retention_seconds=int(t.get("retention_seconds", 7 * 24 * 3600)),
                home_attribute=None if t.get("home_attribute") is None else str(t["home_attribute"]),
                counters=Table.counters_from_rules(request.get("rules") or {}),
                dot_window=int(request.get("dot_window", 32)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigurationError(f"bad `table`: {type(e).__name__} {e}") from None
        skews = request.get("clock_skew_ms") or {}
        if not isinstance(skews, Mapping) or not all(isinstance(v, int) for v in skews.values()):
            raise ConfigurationError("`clock_skew_ms` maps Regions to whole milliseconds")
        self.skews = {str(k): int(v) for k, v in skews.items()}
        self.writers = {}
        return {"writer": WRITER}

    def handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The ``ok`` body of one request; raises what becomes an ``error``."""
        op = request.get("op")
        if op == "configure":
            return self.configure(request)
        if op not in ("insert", "update", "increment", "delete", "get"):
            raise ProtocolError(f"unknown op {op!r}")
        w, region = self.writer(request)
        if op == "insert":
            written = w.insert(region, item_from_json(request.get("item"), "item"))
            return {"version": item_to_json(written.item), "dot": written.dot}
        key = item_from_json(request.get("key"), "key")
        if op == "get":
            record = w.get(region, key)
            if record is None:
                return {"version": None, "dot": None}
            # An unstamped item reads as the version its first write would
            # make: answered with that version's stamp and dot.
            return {
                "version": item_to_json(encode(w.table, record.version)),
                "dot": record.version.header.dot(),
            }
        if op == "update":
            written = w.update(region, key, update_change(request))
        elif op == "increment":
            by = request.get("by")
            if not isinstance(by, int) or isinstance(by, bool):
                raise ProtocolError("`by` is a whole number")
            written = w.increment(region, key, _text(request, "attribute"), by)
        else:
            written = w.delete(region, key)
        return {"version": item_to_json(written.item), "dot": written.dot}

    def answer(self, line: str) -> dict[str, Any]:
        """The answer to one request line."""
        try:
            request = json.loads(line)
        except json.JSONDecodeError as e:
            return error(None, "protocol", f"not a line of JSON ({e.msg} at column {e.colno})")
        if not isinstance(request, dict):
            return error(None, "protocol", "a request is a JSON object")
        rid = request.get("id")
        try:
            return {"id": rid, "ok": self.handle(request)}
        except ProtocolError as e:
            return error(rid, "protocol", str(e))
        except ConfigurationError as e:
            return error(rid, "config", str(e))
        except HomewardError as e:
            out = error(rid, e.kind, str(e))
            if isinstance(e, AttributeRefused):
                out["error"]["attribute"] = e.attribute
            elif isinstance(e, StampError):
                out["error"]["attribute"] = e.field
            elif isinstance(e, TooLarge):
                out["error"]["bytes"] = e.size
            elif isinstance(e, Contended):
                out["error"]["attempts"] = e.attempts
            return out
        except Exception as e:  # noqa: BLE001 - a bug: reported as `internal`, the loop goes on
            traceback.print_exc(file=sys.stderr)
            return error(rid, "internal", f"{type(e).__name__}: {e}")


def update_change(request: Mapping[str, Any]) -> Callable[[Draft], None]:
    """The change function of an ``update``: ``set``, then ``remove``, then ``add``
    (each element set-added to the value the draft holds, read on every attempt)."""
    sets = item_from_json(request.get("set") or {}, "set")
    removes = request.get("remove") or []
    if not isinstance(removes, list) or not all(isinstance(n, str) for n in removes):
        raise ProtocolError("`remove` is a list of attribute names")
    adds = item_from_json(request.get("add") or {}, "add")
    for name, value in adds.items():
        if next(iter(value)) not in ("SS", "NS", "BS"):
            raise ProtocolError(f"`add.{name}` is a set (SS, NS or BS)")

    def change(draft: Draft) -> None:
        for name, value in sets.items():
            draft.set(name, value)
        for name in removes:
            draft.remove(name)
        for name, value in adds.items():
            ((kind, elements),) = value.items()
            current = draft.get(name)
            merged = list(current[kind]) if current is not None and kind in current else []
            for element in elements:
                if element not in merged:
                    merged.append(element)
            draft.set(name, {kind: merged})

    return change


def error(rid: Any, kind: str, message: str) -> dict[str, Any]:
    return {"id": rid, "error": {"kind": kind, "message": message}}


def _text(request: Mapping[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"`{name}` is a non-empty string")
    return value


def serve(stdin: IO[str], stdout: IO[str], adapter: Optional[Adapter] = None) -> int:
    """Answers every line of ``stdin`` on ``stdout``, in order, until EOF."""
    adapter = adapter or Adapter()
    for line in stdin:
        if not line.strip():
            continue
        stdout.write(json.dumps(adapter.answer(line), separators=(",", ":")) + "\n")
        stdout.flush()
    return 0


def main() -> int:
    return serve(sys.stdin, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
