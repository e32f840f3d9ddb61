"""The stamped writer over a boto3 DynamoDB client, and its router.

:class:`Writer` reads strongly consistent in the Region it writes to,
stamps the change and writes conditionally on the version it read,
retrying with full-jitter backoff when another write got there first or
DynamoDB throttles. :class:`Router` picks the Region: the item's home
(``route``) or the caller's (``local``), honours evacuated Regions, and
writes in the caller's Region when the home does not answer.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, TypeVar, Union

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from .errors import (
    ConfigError,
    Contended,
    FixedHome,
    NotFound,
    Rejected,
    TooLarge,
    Unavailable,
)
from .protocol import (
    AttributeValue,
    Change,
    Draft,
    Home,
    Item,
    Planned,
    Table,
    Version,
    WriteContext,
    as_function,
    increments,
    is_region,
    plan_delete,
    plan_insert,
    plan_modify,
    read_version,
)

log = logging.getLogger("homeward")

T = TypeVar("T")

#: DynamoDB's item size limit.
MAX_ITEM_BYTES = 400 * 1024

_THROTTLED = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "Throttling",
    "TooManyRequestsException",
}
_TRANSIENT = {"InternalServerError", "ServiceUnavailable", "InternalFailure", "TransactionInProgressException"}

Clients = Union[Mapping[str, Any], Callable[[str], Any]]


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: attempt ``n`` waits a random time up
    to ``min(cap, base * 2**n)`` seconds."""

    max_attempts: int = 10
    base: float = 0.01
    cap: float = 0.5

    def delay(self, attempt: int) -> float:
        return random.uniform(0.0, min(self.cap, self.base * (1 << min(attempt, 16))))


@dataclass
class Written:
    """A write: where it was made and what it wrote."""

    region: str
    #: The whole item written, stamp included.
    item: Item
    version: Version
    #: Whether the write moved the item's home (router only).
    moved: bool = False

    @property
    def dot(self) -> str:
        """The version's dot, ``region:counter:nonce``."""
        return self.version.header.dot()

    @property
    def home(self) -> Optional[Home]:
        return self.version.home

    @property
    def values(self) -> Item:
        """The item's values, key included, without the stamp."""
        out = dict(self.version.key)
        out.update(self.version.values())
        return out


@dataclass
class Record:
    """An item as read: its values (key included, no stamp), its dot
    (``None`` for an item no stamped writer wrote yet) and its home."""

    region: str
    values: Item
    dot: Optional[str]
    home: Optional[Home]
    version: Version


class _ConditionFailed(Exception):
    pass


def _item_size(item: Mapping[str, AttributeValue]) -> int:
    return sum(len(name.encode()) + _value_size(v) for name, v in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return len(str(inner)) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS"):
        return sum(len(str(x).encode()) for x in inner)
    if kind == "BS":
        return sum(len(x) for x in inner)
    if kind == "L":
        return 3 + sum(1 + _value_size(x) for x in inner)
    return 3 + sum(len(k.encode()) + 1 + _value_size(x) for k, x in inner.items())


class Writer:
    """The stamped writer of one table, in any of its Regions.

    ``clients`` gives the boto3 DynamoDB client of a Region: a mapping
    Region -> client, or a function of the Region. Values are DynamoDB
    attribute values as the low-level client takes them.
    """

    def __init__(
        self,
        clients: Clients,
        table_name: str,
        table: Table,
        *,
        backoff: Backoff = Backoff(),
        clock: Optional[Callable[[str], int]] = None,
        nonces: Optional[Callable[[], int]] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clients = clients
        self.table_name = table_name
        self.table = table
        self.backoff = backoff
        self.clock = clock or (lambda _region: time.time_ns() // 1_000_000)
        self.nonces = nonces or (lambda: random.getrandbits(32))
        self.sleep = sleep

    def client(self, region: str) -> Any:
        if not is_region(region):
            raise ConfigError(f"`{region}` is not a Region name")
        if callable(self._clients):
            return self._clients(region)
        return self._clients[region]

    def context(self, region: str) -> WriteContext:
        return WriteContext(region, self.clock(region), self.nonces())

    # -- calls -------------------------------------------------------------

    def call(self, region: str, operation: str, **request: Any) -> Any:
        """One DynamoDB call in ``region``, retried with backoff while
        DynamoDB throttles or fails transiently."""
        for attempt in range(1, self.backoff.max_attempts + 1):
            try:
                return getattr(self.client(region), operation)(**request)
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code == "ConditionalCheckFailedException":
                    raise _ConditionFailed() from None
                if code in _THROTTLED or code in _TRANSIENT or status >= 500:
                    if attempt == self.backoff.max_attempts:
                        raise Unavailable(region, f"{code or status} after {attempt} attempts") from e
                    log.debug("dynamodb %s in %s: %s; retrying", operation, region, code or status)
                    self.sleep(self.backoff.delay(attempt))
                    continue
                raise Rejected(region, code or str(status)) from e
            except (BotoConnectionError, HTTPClientError) as e:
                raise Unavailable(
                    region, f"did not answer ({type(e).__name__})", ambiguous=operation == "put_item"
                ) from e
        raise Unavailable(region, "no attempt made")

    def read(self, region: str, key: Mapping[str, AttributeValue]) -> Optional[Item]:
        """The raw item, strongly consistent, or ``None``."""
        response = self.call(
            region,
            "get_item",
            TableName=self.table_name,
            Key=self.table.check_key(key),
            ConsistentRead=True,
        )
        item: Optional[Item] = response.get("Item")
        return item

    def put(self, region: str, planned: Planned) -> None:
        size = _item_size(planned.item)
        if size > MAX_ITEM_BYTES:
            raise TooLarge(size)
        self.call(
            region,
            "put_item",
            TableName=self.table_name,
            Item=planned.item,
            **planned.condition.expression(self.table),
        )

    # -- operations --------------------------------------------------------

    def get(self, region: str, key: Mapping[str, AttributeValue]) -> Optional[Record]:
        """The item in ``region`` (strongly consistent); ``None`` when there is
        none or it is soft-deleted. An unstamped item reads as the version its
        first stamped write would make (nothing is written)."""
        item = self.read(region, key)
        if item is None or self.table.ttl_attribute in item:
            return None
        stamped = self.table.stamp_attribute in item
        version = read_version(self.table, item, region)
        values = dict(version.key)
        values.update(version.values())
        return Record(region, values, version.header.dot() if stamped else None, version.home, version)

    def insert(self, region: str, item: Mapping[str, AttributeValue], *, home: Optional[Home] = None) -> Written:
        """Creates an item, or revives a soft-deleted one.

        Raises :class:`~homeward.errors.AlreadyExists` when a live item has this key.
        """
        key = self.table.check_key(self.table.key_of(item))
        for _ in range(2):
            planned = plan_insert(self.table, None, item, self.context(region), home=home)
            try:
                self.put(region, planned)
                return Written(region, planned.item, planned.version)
            except _ConditionFailed:
                pass
            # Something holds the key: a tombstone can be written over.
            try:
                return self._modify(
                    region,
                    key,
                    lambda read, ctx: plan_insert(self.table, read, item, ctx, home=home),
                )
            except NotFound:
                continue  # TTL removed the tombstone in between
        raise Contended(2)

    def update(
        self,
        region: str,
        key: Mapping[str, AttributeValue],
        change: Change,
        *,
        home: Optional[Home] = None,
    ) -> Written:
        """Read-modify-write of an existing item. ``change`` is a function
        editing a :class:`~homeward.protocol.Draft` (it may run more than once)
        or a dict of values (:data:`~homeward.protocol.REMOVE` removes)."""
        fn = as_function(change)
        return self._modify(region, key, lambda read, ctx: plan_modify(self.table, read, ctx, fn, home=home))

    def increment(self, region: str, key: Mapping[str, AttributeValue], attribute: str, delta: int) -> Written:
        """Adds ``delta`` to counter attribute ``attribute``."""
        return self.update(region, key, increments([(attribute, delta)]))

    def delete(self, region: str, key: Mapping[str, AttributeValue]) -> Written:
        """Soft delete: every plain attribute removed (stamped tombstones), the
        TTL attribute set; DynamoDB's TTL removes the item later."""
        return self._modify(region, key, lambda read, ctx: plan_delete(self.table, read, ctx))

    def _modify(
        self,
        region: str,
        key: Mapping[str, AttributeValue],
        plan: Callable[[Optional[Item], WriteContext], Planned],
    ) -> Written:
        self.table.check_key(key)
        for attempt in range(1, self.backoff.max_attempts + 1):
            read = self.read(region, key)
            planned = plan(read, self.context(region))
            try:
                self.put(region, planned)
                return Written(region, planned.item, planned.version)
            except _ConditionFailed:
                log.debug("item changed under the write in %s; retrying (attempt %d)", region, attempt)
                self.sleep(self.backoff.delay(attempt))
        raise Contended(self.backoff.max_attempts)


# -- homes and routing ---------------------------------------------------------


class HomeStrategy:
    """Where an item's home is (``HOME_STRATEGY``): ``attribute:<name>``,
    ``key-prefix:<key attribute>``, ``stamp`` or ``table:<pattern>``."""

    def __init__(self, spec: str, table_name: str = "") -> None:
        kind, sep, arg = spec.partition(":")
        self.spec = spec
        self.kind = kind
        self.name: Optional[str] = None
        self.region: Optional[str] = None
        if kind in ("attribute", "key-prefix") and sep and arg:
            self.name = arg
        elif kind == "stamp" and not sep:
            pass
        elif kind == "table" and sep:
            before, found, after = arg.partition("{region}")
            if not found:
                raise ConfigError(f"table pattern `{arg}` has no `{{region}}`")
            middle = table_name[len(before) : len(table_name) - len(after)] if after else table_name[len(before) :]
            if not (table_name.startswith(before) and table_name.endswith(after) and is_region(middle)):
                raise ConfigError(f"table name `{table_name}` does not match pattern `{arg}`")
            self.region = middle
        elif kind == "negotiated" and not sep:
            raise ConfigError("the negotiated home strategy is not supported by the Python writer")
        else:
            raise ConfigError(
                f"home strategy `{spec}` is not one of `attribute:<name>`, `key-prefix:<key attribute>`, "
                "`stamp`, `table:<pattern with {region}>`"
            )

    def mirror(self) -> Optional[str]:
        """The attribute that mirrors the home (kept in step by moves)."""
        return self.name if self.kind == "attribute" else None

    def can_rehome(self) -> bool:
        return self.kind not in ("key-prefix", "table")

    def home_of(self, item: Mapping[str, AttributeValue], stamp_attribute: str = "_hw") -> Optional[Home]:
        """The home ``item`` names (``None``: none)."""
        if self.kind == "table":
            assert self.region is not None
            return Home(self.region, 0)
        stamp = item.get(stamp_attribute)
        stamped = None
        if isinstance(stamp, Mapping) and isinstance(stamp.get("M"), Mapping):
            from .protocol import decode_home

            stamped = decode_home(stamp["M"])
        if self.kind == "stamp":
            return stamped
        assert self.name is not None
        if self.kind == "attribute":
            if stamped is not None:
                return stamped
            value = item.get(self.name)
            if value is None:
                return None
            return _named(value.get("S"), self.name)
        value = item.get(self.name)
        text = value.get("S") if isinstance(value, Mapping) else None
        if not isinstance(text, str) or "#" not in text:
            raise ConfigError(f"key `{self.name}` has no `region#` prefix")
        return _named(text.split("#", 1)[0], self.name)

    def home_of_record(self, record: Record) -> Optional[Home]:
        if self.kind == "stamp" or (self.kind == "attribute" and record.home is not None):
            return record.home
        return self.home_of(record.values)


def _named(text: Any, attribute: str) -> Home:
    if not isinstance(text, str) or not is_region(text):
        raise ConfigError(f"the home in `{attribute}` is not a Region name")
    return Home(text, 0)


class Evacuations:
    """The evacuated Regions: a fixed list plus the control item in the
    caller's Region's journal table (``pk`` = ``homeward:control``, ``sk`` =
    ``evacuated``, ``regions`` = L of S), re-read at most every ``refresh``
    seconds. When the control item cannot be read the last list stands."""

    def __init__(
        self,
        writer: Writer,
        journal_table: Optional[str],
        fixed: Iterable[str] = (),
        refresh: float = 5.0,
    ) -> None:
        self.writer = writer
        self.journal_table = journal_table
        self.fixed = frozenset(fixed)
        self.refresh = refresh
        self._cached: Optional[tuple[float, frozenset[str]]] = None
        self._lock = threading.Lock()

    def current(self, local: str) -> frozenset[str]:
        if self.journal_table is None:
            return self.fixed
        with self._lock:
            cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < self.refresh:
            return self.fixed | cached[1]
        try:
            listed = self._read(local)
        except Exception as e:  # noqa: BLE001 - any failure keeps the last list
            log.warning("cannot read the evacuated Regions (%s); keeping the last list", type(e).__name__)
            return self.fixed | (cached[1] if cached else frozenset())
        with self._lock:
            self._cached = (time.monotonic(), listed)
        return self.fixed | listed

    def _read(self, local: str) -> frozenset[str]:
        response = self.writer.client(local).get_item(
            TableName=self.journal_table,
            Key={"pk": {"S": "homeward:control"}, "sk": {"S": "evacuated"}},
            ConsistentRead=True,
        )
        regions = response.get("Item", {}).get("regions")
        if regions is None:
            return frozenset()
        if not isinstance(regions, Mapping) or not isinstance(regions.get("L"), list):
            raise ValueError("control item `evacuated`: `regions` is not a list")
        out = set()
        for entry in regions["L"]:
            name = entry.get("S") if isinstance(entry, Mapping) else None
            if not isinstance(name, str) or not is_region(name):
                raise ValueError("control item `evacuated`: an entry is not a Region name")
            out.add(name)
        return frozenset(out)


class Router:
    """The writer of one Region (``local``) with a routing mode:
    ``route`` sends each write to the item's home Region, ``local`` writes in
    ``local``. Both honour evacuated Regions: a write for an item homed in
    one is made here and moves the home here, one epoch on. In ``route``
    mode a home that does not answer gets the write made here instead (the
    resolvers reconcile it)."""

    def __init__(
        self,
        writer: Writer,
        local: str,
        *,
        mode: str = "route",
        strategy: Union[str, HomeStrategy] = "attribute:home_region",
        journal_table: Optional[str] = None,
        evacuated: Iterable[str] = (),
        control_refresh: float = 5.0,
    ) -> None:
        if mode not in ("route", "local"):
            raise ConfigError(f"mode `{mode}` is not one of route, local")
        if not is_region(local):
            raise ConfigError(f"`{local}` is not a Region name")
        self.homes = strategy if isinstance(strategy, HomeStrategy) else HomeStrategy(strategy, writer.table_name)
        mirror = self.homes.mirror()
        if writer.table.home_attribute != mirror:
            import dataclasses

            writer.table = dataclasses.replace(writer.table, home_attribute=mirror)
        self.writer = writer
        self.local = local
        self.mode = mode
        self.evacuations = Evacuations(writer, journal_table, evacuated, control_refresh)

    def evacuated(self) -> frozenset[str]:
        return self.evacuations.current(self.local)

    def home_of(self, key: Mapping[str, AttributeValue]) -> Optional[Home]:
        """The item's home as this Region's copy names it."""
        if self.homes.kind == "table":
            return self.homes.home_of(key)
        item = self.writer.read(self.local, key)
        if item is None:
            return None
        return self.homes.home_of(item, self.writer.table.stamp_attribute)

    def target(self, home: Optional[str]) -> str:
        """The Region a write for an item homed in ``home`` goes to."""
        if self.mode == "route" and home is not None and home not in self.evacuated():
            return home
        return self.local

    def insert(self, item: Mapping[str, AttributeValue]) -> Written:
        """Creates an item where its home is (``stamp``: homed here)."""
        item = dict(item)
        home = Home(self.local, 0) if self.homes.kind == "stamp" else None
        named_home = home or self.homes.home_of(item, self.writer.table.stamp_attribute)
        named = named_home.region if named_home else None
        moved = False
        if named is not None and named in self.evacuated() and self.homes.can_rehome() and named != self.local:
            # Born during an evacuation: homed here from the start.
            home = Home(self.local, 1)
            mirror = self.homes.mirror()
            if mirror is not None:
                item[mirror] = {"S": self.local}
            moved = True
        region = self.local if moved else self.target(named)
        written = self.writer.insert(region, item, home=home)
        written.moved = moved
        return written

    def update(self, key: Mapping[str, AttributeValue], change: Change) -> Written:
        """Read-modify-write in the Region the mode picks."""
        fn = as_function(change)
        home = self.home_of(key)
        if home is not None and home.region in self.evacuated():
            if self.homes.can_rehome() and home.region != self.local:
                log.info("home evacuated: this Region adopts the item")
                return self._move(key, home, self.local, fn)
        return self._with_fallback(home, lambda region: self.writer.update(region, key, fn))

    def increment(self, key: Mapping[str, AttributeValue], attribute: str, delta: int) -> Written:
        return self.update(key, increments([(attribute, delta)]))

    def delete(self, key: Mapping[str, AttributeValue]) -> Written:
        """Soft delete, in the Region the mode picks."""
        return self._with_fallback(self.home_of(key), lambda region: self.writer.delete(region, key))

    def get(self, key: Mapping[str, AttributeValue]) -> Optional[Record]:
        """Reads the item where writes go (its home in ``route`` mode), or here
        when the home does not answer."""
        home = self.home_of(key)
        region = self.target(home.region if home else None)
        try:
            return self.writer.get(region, key)
        except Unavailable:
            if region == self.local:
                raise
            return self.writer.get(self.local, key)

    def move_home(self, key: Mapping[str, AttributeValue], to: str) -> Written:
        """Moves the item's home to ``to`` (one epoch on, the home attribute set)."""
        if not is_region(to):
            raise ConfigError(f"`{to}` is not a Region name")
        home = self.home_of(key) or Home(self.local, 0)
        at = to if home.region in self.evacuated() else home.region
        current = self.writer.get(at, key)
        if current is not None:
            now = self.homes.home_of_record(current)
            if now is not None and now.region == to:
                return Written(at, self.writer.read(at, key) or {}, current.version, moved=False)
        return self._move(key, home, to, lambda _draft: None)

    def _move(self, key: Mapping[str, AttributeValue], old: Home, to: str, change: Callable[[Draft], Any]) -> Written:
        if not self.homes.can_rehome():
            raise FixedHome(
                f"the home of a `{self.homes.kind}` strategy is part of the item's key or table; it cannot move"
            )
        at = to if old.region in self.evacuated() else old.region
        mirror = self.homes.mirror()

        def moved(draft: Draft) -> None:
            change(draft)
            if mirror is not None:
                draft.set(mirror, {"S": to})

        written = self.writer.update(at, key, moved, home=Home(to, old.epoch + 1))
        written.moved = True
        return written

    def _with_fallback(self, home: Optional[Home], write: Callable[[str], Written]) -> Written:
        region = self.target(home.region if home else None)
        try:
            return write(region)
        except Unavailable as e:
            if region == self.local:
                raise
            log.warning("home Region %s unreachable (%s); writing in %s", region, e.reason, self.local)
            return write(self.local)
