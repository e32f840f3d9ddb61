"""The stamp protocol, pure: decode a stamped item, apply a change, encode.

Values are DynamoDB attribute values in the low-level client's form
(``{"S": "x"}``, ``{"N": "5"}``, ``{"B": b"..."}``, ...). Nothing here does
I/O: :func:`plan_insert`, :func:`plan_update` and :func:`plan_delete` turn
the item as read into the item to write and its condition, exactly as the
Rust writer does (the conformance vectors check it).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from .errors import (
    AlreadyExists,
    BadHome,
    BadKey,
    ConfigError,
    CounterMismatch,
    CounterRemoved,
    CounterValue,
    NotACounter,
    NotFound,
    Overflow,
    ReservedAttribute,
    StampError,
)

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]

#: The highest dot counter or home epoch a stamp may hold (2^53 - 1).
MAX_COUNTER = (1 << 53) - 1
MAX_EPOCH = MAX_COUNTER
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1
DEFAULT_WINDOW = 32
PENDING_KEPT = 16

_REGION = re.compile(r"^[a-z0-9-]{1,32}$")
_I64 = re.compile(r"[+-]?[0-9]+")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def is_region(name: str) -> bool:
    """Whether ``name`` is a Region name (lower-case letters, digits, ``-``)."""
    return bool(_REGION.match(name))


def base36(n: int) -> str:
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_DIGITS[r])
    return "".join(reversed(out))


def _parse_u(text: str, what: str, limit: int) -> int:
    if not text.isdigit():
        raise StampError(what, "not a whole number")
    value = int(text)
    if value > limit:
        raise Overflow(what)
    return value


def _nonce(text: str, what: str) -> int:
    try:
        value = int(text, 36)
    except ValueError:
        raise StampError(what, "bad nonce") from None
    if value < 0 or value > 0xFFFFFFFF or text != text.lower() or text.startswith(("+", "-")):
        raise StampError(what, "bad nonce")
    return value


@dataclass(frozen=True, order=True)
class Tick:
    """A write's place on its Region's chain: counter and nonce."""

    counter: int
    nonce: int

    def encode(self) -> str:
        return f"{self.counter}:{base36(self.nonce)}"

    @staticmethod
    def decode(text: str, what: str) -> Tick:
        counter, sep, nonce = text.partition(":")
        if not sep:
            raise StampError(what, "a dot is `counter:nonce`")
        return Tick(_parse_u(counter, what, MAX_COUNTER), _nonce(nonce, what))


@dataclass(frozen=True, order=True)
class TimedDot:
    """``region:counter:nonce:time_ms``; ordered as the Rust core orders it."""

    region: str
    tick: Tick
    time_ms: int

    def encode(self) -> str:
        return f"{self.region}:{self.tick.encode()}:{self.time_ms}"

    @staticmethod
    def decode(text: str, what: str) -> TimedDot:
        head, sep, time = text.rpartition(":")
        region, sep2, tick = head.partition(":")
        if not sep or not sep2 or not is_region(region) or not time.isdigit():
            raise StampError(what, "a timed dot is `region:counter:nonce:time_ms`")
        return TimedDot(region, Tick.decode(tick, what), int(time))


@dataclass
class Sibling:
    at: TimedDot
    value: Optional[AttributeValue]


@dataclass
class Register:
    """One plain attribute's surviving edits: one, or concurrent siblings."""

    siblings: list[Sibling]
    shown: Optional[AttributeValue]
    many: bool = False

    @staticmethod
    def one(at: TimedDot, value: Optional[AttributeValue]) -> Register:
        return Register([Sibling(at, value)], value, False)


@dataclass
class Contribution:
    base: int = 0
    watermark: int = 0
    deltas: dict[Tick, int] = field(default_factory=dict)

    def total(self) -> int:
        return self.base + sum(self.deltas.values())


@dataclass
class Home:
    region: str
    epoch: int
    #: Foreign writes counted towards an `after N` re-home (``m``): Region ->
    #: set of (counter, time_ms). ``None``: no ``m``.
    pending: Optional[dict[str, set[tuple[int, int]]]] = None

    def key(self) -> tuple[int, str]:
        return (self.epoch, self.region)


@dataclass
class Header:
    origin: str
    time_ms: int
    by: str
    tick: Tick

    def dot(self) -> str:
        return f"{self.origin}:{self.tick.encode()}"


@dataclass
class Version:
    key: Item
    header: Header
    known: dict[str, set[Tick]]
    attrs: dict[str, Register]
    counters: dict[str, dict[str, Contribution]]
    home: Optional[Home]

    def next_counter(self, region: str) -> int:
        window = self.known.get(region)
        if not window:
            return 1
        highest = max(t.counter for t in window)
        if highest + 1 > MAX_COUNTER:
            raise Overflow(f"k.{region}")
        return highest + 1

    def values(self) -> Item:
        """Every value the item shows, without key and stamp."""
        out: Item = {n: r.shown for n, r in self.attrs.items() if r.shown is not None}
        for name, counter in self.counters.items():
            out[name] = {"N": str(counter_total(counter))}
        return out

    def check_arithmetic(self) -> None:
        for region in self.known:
            self.next_counter(region)
        if self.header.tick.counter > MAX_COUNTER:
            raise Overflow("dot")
        if self.home is not None and self.home.epoch + 1 > MAX_EPOCH:
            raise Overflow("e")
        for name, counter in self.counters.items():
            if not I64_MIN <= counter_total(counter) <= I64_MAX:
                raise Overflow(f"c.{name}")

    def trim(self, window: int) -> None:
        """Keeps each Region's ``window`` highest distinct counters and folds
        counter deltas below a Region's window into its base."""
        for region, ticks in self.known.items():
            distinct = sorted({t.counter for t in ticks}, reverse=True)
            if len(distinct) > window:
                cut = distinct[window]
                self.known[region] = {t for t in ticks if t.counter > cut}
        for counter in self.counters.values():
            for region, c in counter.items():
                window_ticks = self.known.get(region)
                lowest = min(t.counter for t in window_ticks) if window_ticks else 0
                _fold(c, max(lowest - 1, 0))


def _fold(c: Contribution, cut: int) -> None:
    if cut <= c.watermark:
        return
    folded = c.base + sum(d for t, d in c.deltas.items() if t.counter <= cut)
    if not I64_MIN <= folded <= I64_MAX:
        return
    c.base = folded
    c.deltas = {t: d for t, d in c.deltas.items() if t.counter > cut}
    c.watermark = max(c.watermark, cut)


def counter_total(counter: Mapping[str, Contribution]) -> int:
    return sum(c.total() for c in counter.values())


@dataclass(frozen=True)
class Table:
    """What the protocol needs to know about the table."""

    partition_key: str
    sort_key: Optional[str] = None
    stamp_attribute: str = "_hw"
    ttl_attribute: str = "hw_expires"
    retention_seconds: int = 7 * 24 * 3600
    #: The attribute that mirrors the home (``attribute:<name>`` strategy).
    home_attribute: Optional[str] = None
    #: Attributes whose merge rule is ``counter``.
    counters: frozenset[str] = frozenset()
    #: ``DOT_WINDOW``.
    dot_window: int = DEFAULT_WINDOW

    @staticmethod
    def counters_from_rules(rules: Union[str, Mapping[str, Any]]) -> frozenset[str]:
        """The counter attributes of ``MERGE_RULES`` (JSON text or parsed)."""
        parsed = json.loads(rules) if isinstance(rules, str) else rules
        if not isinstance(parsed, Mapping):
            raise ConfigError("merge rules are a JSON object")
        attributes = parsed.get("attributes", {})
        if not isinstance(attributes, Mapping):
            raise ConfigError("merge rules: `attributes` is an object")
        return frozenset(
            name for name, spec in attributes.items() if isinstance(spec, str) and spec.split(":", 1)[0] == "counter"
        )

    def key_attributes(self) -> tuple[str, ...]:
        if self.sort_key is None:
            return (self.partition_key,)
        return (self.partition_key, self.sort_key)

    def is_reserved(self, name: str) -> bool:
        return name == self.stamp_attribute or name in self.key_attributes()

    def key_of(self, item: Mapping[str, AttributeValue]) -> Item:
        key: Item = {}
        for name in self.key_attributes():
            value = item.get(name)
            if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in ("S", "N", "B"):
                raise BadKey(name)
            key[name] = dict(value)
        return key

    def check_key(self, key: Mapping[str, AttributeValue]) -> Item:
        checked = self.key_of(key)
        for name in key:
            if name not in checked:
                raise BadKey(name)
        return checked


# -- decoding ---------------------------------------------------------------


def _s(stamp: Mapping[str, Any], name: str) -> str:
    value = stamp.get(name)
    if not isinstance(value, Mapping) or not isinstance(value.get("S"), str):
        raise StampError(name, "missing or not a string")
    return str(value["S"])


def _n(stamp: Mapping[str, Any], name: str, limit: int) -> int:
    value = stamp.get(name)
    if not isinstance(value, Mapping) or not isinstance(value.get("N"), str):
        raise StampError(name, "missing or not a number")
    return _parse_u(str(value["N"]), name, limit)


def _m(stamp: Mapping[str, Any], name: str) -> Optional[Mapping[str, Any]]:
    value = stamp.get(name)
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("M"), Mapping):
        raise StampError(name, "not a map")
    inner: Mapping[str, Any] = value["M"]
    return inner


def _i64(text: str) -> Optional[int]:
    if not _I64.fullmatch(text):
        return None
    value = int(text)
    return value if I64_MIN <= value <= I64_MAX else None


def decode_home(stamp: Mapping[str, Any]) -> Optional[Home]:
    has_h, has_e = "h" in stamp, "e" in stamp
    if not has_h and not has_e:
        return None
    if has_h != has_e:
        raise StampError("h", "`h` and `e` come together")
    region = _s(stamp, "h")
    if not is_region(region):
        raise StampError("h", "not a Region name")
    epoch = _n(stamp, "e", MAX_EPOCH)
    if epoch + 1 > MAX_EPOCH:
        raise Overflow("e")
    pending: Optional[dict[str, set[tuple[int, int]]]] = None
    m = _m(stamp, "m")
    if m is not None:
        pending = {}
        for r, text in m.items():
            if not is_region(r) or not isinstance(text, Mapping) or not isinstance(text.get("S"), str):
                raise StampError("m", "a Region's writes are not a string")
            kept: set[tuple[int, int]] = set()
            for pair in str(text["S"]).split():
                c, sep, t = pair.partition(":")
                if not sep or not c.isdigit() or not t.isdigit():
                    raise StampError("m", "writes are `counter:time_ms` pairs")
                kept.add((_parse_u(c, "m", MAX_COUNTER), int(t)))
            pending[r] = kept
    return Home(region, epoch, pending)


def decode(table: Table, item: Mapping[str, AttributeValue]) -> Version:
    """Decodes a stamped item written by the protocol. An item a plain writer
    changed is refused here; :func:`adopt_plain` takes it in.

    Raises :class:`StampError` (or :class:`Overflow`) naming the field.
    """
    version, plain = decode_lenient(table, item)
    if not plain:
        return version
    name = plain[0]
    if name in version.counters:
        raise StampError(f"c.{name}", f"attribute `{name}` is not the sum of its contributions")
    raise StampError("d", f"attribute `{name}` has a value but no dot")


def decode_lenient(table: Table, item: Mapping[str, AttributeValue]) -> tuple[Version, list[str]]:
    """Decodes a stamped item, listing (sorted) the attributes its stamp does
    not account for: attributes with a value and no dot, and counters whose
    value is not the sum of their contributions (a plain writer's edits).
    The version shows those attributes as they were before.

    Raises :class:`StampError` (or :class:`Overflow`) naming the field.
    """
    try:
        key = table.key_of(item)
    except BadKey as e:
        raise StampError(e.attribute, "the item lacks this key attribute") from None
    stamp_value = item.get(table.stamp_attribute)
    if not isinstance(stamp_value, Mapping) or not isinstance(stamp_value.get("M"), Mapping):
        raise StampError(table.stamp_attribute, "missing or not a map")
    stamp: Mapping[str, Any] = stamp_value["M"]
    origin = _s(stamp, "o")
    if not is_region(origin):
        raise StampError("o", "not a Region name")
    time_ms = _n(stamp, "t", 1 << 64)
    by = _s(stamp, "by")
    if by not in ("app", "resolver"):
        raise StampError("by", "neither app nor resolver")
    dot_region, sep, dot_tick = _s(stamp, "dot").partition(":")
    if not sep or dot_region != origin:
        raise StampError("dot", "its Region differs from `o`")
    header = Header(origin, time_ms, by, Tick.decode(dot_tick, "dot"))

    known: dict[str, set[Tick]] = {}
    k = _m(stamp, "k")
    if k is None:
        raise StampError("k", "missing")
    for region, text in k.items():
        if not is_region(region) or not isinstance(text, Mapping) or not isinstance(text.get("S"), str):
            raise StampError("k", "a Region's window is not a string")
        known[region] = {Tick.decode(t, f"k.{region}") for t in str(text["S"]).split()}

    counters: dict[str, dict[str, Contribution]] = {}
    for name, per_region in (_m(stamp, "c") or {}).items():
        what = f"c.{name}"
        if not isinstance(per_region, Mapping) or not isinstance(per_region.get("M"), Mapping):
            raise StampError(what, "not a map")
        counter: dict[str, Contribution] = {}
        for region, text in per_region["M"].items():
            if not is_region(region) or not isinstance(text, Mapping) or not isinstance(text.get("S"), str):
                raise StampError(what, "a Region's contribution is not a string")
            parts = str(text["S"]).split()
            base = _i64(parts[0]) if parts else None
            if base is None or len(parts) < 2:
                raise StampError(what, "not `base watermark counter:nonce:delta ...`")
            watermark = _parse_u(parts[1], what, MAX_COUNTER)
            deltas: dict[Tick, int] = {}
            for part in parts[2:]:
                tick, sep, delta_text = part.rpartition(":")
                delta = _i64(delta_text)
                if not sep or delta is None:
                    raise StampError(what, "not `base watermark counter:nonce:delta ...`")
                deltas[Tick.decode(tick, what)] = delta
            counter[region] = Contribution(base, watermark, deltas)
        counters[name] = counter

    attrs: dict[str, Register] = {}
    for at_text, names in (_m(stamp, "d") or {}).items():
        at = TimedDot.decode(at_text, "d")
        if not isinstance(names, Mapping) or not isinstance(names.get("SS"), list):
            raise StampError("d", "a group is not a string set")
        for name in names["SS"]:
            if name in attrs:
                raise StampError("d", f"attribute `{name}` has two dots")
            attrs[name] = Register.one(at, item.get(name))
    for name, entries in (_m(stamp, "s") or {}).items():
        what = f"s.{name}"
        if not isinstance(entries, Mapping) or not isinstance(entries.get("L"), list):
            raise StampError(what, "not a list")
        siblings = []
        for entry in entries["L"]:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("M"), Mapping):
                raise StampError(what, "an entry is not a map")
            fields = entry["M"]
            siblings.append(Sibling(TimedDot.decode(_s(fields, "at"), what), fields.get("v")))
        if len(siblings) < 2:
            raise StampError(what, "fewer than two concurrent edits")
        if name in attrs:
            raise StampError("s", f"attribute `{name}` is also in `d`")
        siblings.sort(key=lambda s: s.at)
        attrs[name] = Register(siblings, item.get(name), True)

    plain: list[str] = []
    for name, value in item.items():
        if table.is_reserved(name):
            continue
        if name in counters:
            total = counter_total(counters[name])
            if not I64_MIN <= total <= I64_MAX:
                raise Overflow(f"c.{name}")
            if value != {"N": str(total)}:
                plain.append(name)
        elif name not in attrs:
            plain.append(name)

    version = Version(key, header, known, attrs, counters, decode_home(stamp))
    version.check_arithmetic()
    return version, sorted(plain)


# -- adoption -----------------------------------------------------------------

#: The origin of edits made outside the protocol (a plain ``PutItem`` or
#: ``UpdateItem``, a console edit): never a stamp's ``o``, only in
#: per-attribute dots, windows and counters.
UNATTRIBUTED = "unattributed"


@dataclass
class Adoption:
    """A version of a stamped item with its plain writers' edits taken in."""

    version: Version
    #: The adoption's dot, when there was something to take in.
    dot: Optional[TimedDot]
    #: The attributes taken in, sorted.
    attributes: list[str]


def fnv1a32(data: bytes) -> int:
    """FNV-1a, 32 bits: offset basis 0x811c9dc5, prime 0x01000193."""
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _hex(value: Any) -> str:
    return (value.encode() if isinstance(value, str) else bytes(value)).hex()


def canonical(value: Mapping[str, Any]) -> str:
    """A value as text that is the same for equal values whatever the order
    of their map keys and set members (the adoption nonce hashes it): the
    type tag, then the value; strings as JSON strings, binary as lower-case
    hex, set members sorted by their text, map entries by key."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return "S" + _json_string(inner)
    if kind == "N":
        return "N" + str(inner)
    if kind == "B":
        return "B" + _hex(inner)
    if kind == "BOOL":
        return "BOOLtrue" if inner else "BOOLfalse"
    if kind == "NULL":
        return "NULL"
    if kind == "SS":
        return "SS[" + ",".join(sorted(_json_string(x) for x in inner)) + "]"
    if kind == "NS":
        return "NS[" + ",".join(sorted(str(x) for x in inner)) + "]"
    if kind == "BS":
        return "BS[" + ",".join(sorted(_hex(x) for x in inner)) + "]"
    if kind == "L":
        return "L[" + ",".join(canonical(x) for x in inner) + "]"
    if kind == "M":
        return "M{" + ",".join(f"{_json_string(k)}:{canonical(inner[k])}" for k in sorted(inner)) + "}"
    raise StampError(kind, "not a DynamoDB attribute value type")


def adoption_text(base_dot: str, edits: Mapping[str, Mapping[str, Any]]) -> str:
    """The text an adoption nonce hashes: the base dot (empty for an item
    without a stamp), a newline, then each attribute of ``edits`` (sorted by
    name), its canonical value, each followed by a newline. The plain
    attributes' dot hashes them; the counters' slot hashes no attribute."""
    parts = [base_dot, "\n"]
    for name in sorted(edits):
        parts.extend((name, "\n", canonical(edits[name]), "\n"))
    return "".join(parts)


def _nonce_of(text: str) -> int:
    return fnv1a32(text.encode("utf-8"))


def adopt_plain(table: Table, item: Mapping[str, AttributeValue]) -> Adoption:
    """Reads an item, taking in what plain writers changed in it (as the Rust
    core's ``adopt::adopt``). For a stamped item: attributes with a value and
    no dot, and counters off their contributions; for an item without a
    stamp: every attribute. Each becomes an edit of :data:`UNATTRIBUTED`,
    derived from the item alone (every writer adopting the same edit makes
    the same one), with counter ``n`` = the next of ``k.unattributed``:

    - plain attributes: one dot ``unattributed:n:<nonce>`` at the stamp's
      ``t`` (0 without a stamp), the nonce hashing the base dot and their
      values (:func:`adoption_text`);
    - counters: ``value - sum`` as ``unattributed``'s delta in the stamp's
      *slot*, ``n:<nonce of the base dot alone>``.

    The next write records them. Raises :class:`StampError` (a malformed
    stamp; :class:`CounterMismatch` for a counter attribute whose value is
    not a whole number), :class:`BadKey` (an item without a stamp lacking a
    key attribute).
    """
    stamped = table.stamp_attribute in item
    if stamped:
        version, plain = decode_lenient(table, item)
        base_dot = version.header.dot()
    else:
        version = Version(table.key_of(item), Header(UNATTRIBUTED, 0, "app", Tick(0, 0)), {}, {}, {}, None)
        plain = sorted(name for name in item if not table.is_reserved(name))
        base_dot = ""
    if not plain:
        return Adoption(version, None, [])
    counter = version.next_counter(UNATTRIBUTED)
    is_counter = [name in version.counters or name in table.counters for name in plain]
    registers = {name: item[name] for name, c in zip(plain, is_counter) if not c}
    counters = [name for name, c in zip(plain, is_counter) if c]
    dot: Optional[TimedDot] = None
    known = version.known.setdefault(UNATTRIBUTED, set())
    if registers:
        tick = Tick(counter, _nonce_of(adoption_text(base_dot, registers)))
        dot = TimedDot(UNATTRIBUTED, tick, version.header.time_ms if stamped else 0)
        for name, value in registers.items():
            version.attrs[name] = Register.one(dot, copy.deepcopy(value))
        known.add(tick)
    if counters:
        slot = Tick(counter, _nonce_of(adoption_text(base_dot, {})))
        for name in counters:
            value = item[name]
            target = _i64(str(value["N"])) if isinstance(value.get("N"), str) else None
            if target is None:
                raise CounterMismatch(name, next(iter(value), "?"))
            delta = target - counter_total(version.counters.get(name, {}))
            if not I64_MIN <= delta <= I64_MAX:
                raise Overflow(f"c.{name}")
            contributions = version.counters.setdefault(name, {})
            contributions.setdefault(UNATTRIBUTED, Contribution()).deltas[slot] = delta
            version.attrs.pop(name, None)
        known.add(slot)
        if dot is None:
            dot = TimedDot(UNATTRIBUTED, slot, version.header.time_ms if stamped else 0)
    assert dot is not None
    if not stamped:
        version.header.tick = dot.tick
    version.check_arithmetic()
    return Adoption(version, dot, plain)


# -- encoding ---------------------------------------------------------------


def encode_stamp(version: Version) -> AttributeValue:
    h = version.header
    stamp: dict[str, AttributeValue] = {
        "o": {"S": h.origin},
        "t": {"N": str(h.time_ms)},
        "by": {"S": h.by},
        "dot": {"S": h.dot()},
        "k": {
            "M": {
                region: {"S": " ".join(t.encode() for t in sorted(ticks, reverse=True))}
                for region, ticks in version.known.items()
            }
        },
    }
    groups: dict[TimedDot, list[str]] = {}
    multi: dict[str, AttributeValue] = {}
    for name in sorted(version.attrs):
        register = version.attrs[name]
        if not register.many:
            groups.setdefault(register.siblings[0].at, []).append(name)
        else:
            entries = []
            for s in register.siblings:
                entry: dict[str, AttributeValue] = {"at": {"S": s.at.encode()}}
                if s.value is not None:
                    entry["v"] = s.value
                entries.append({"M": entry})
            multi[name] = {"L": entries}
    if groups:
        stamp["d"] = {"M": {at.encode(): {"SS": names} for at, names in sorted(groups.items())}}
    if multi:
        stamp["s"] = {"M": multi}
    if version.counters:
        stamp["c"] = {
            "M": {
                name: {"M": {region: {"S": _encode_contribution(c)} for region, c in counter.items()}}
                for name, counter in version.counters.items()
            }
        }
    if version.home is not None:
        stamp["h"] = {"S": version.home.region}
        stamp["e"] = {"N": str(version.home.epoch)}
        if version.home.pending is not None:
            stamp["m"] = {
                "M": {
                    region: {"S": " ".join(f"{c}:{t}" for c, t in sorted(kept))}
                    for region, kept in version.home.pending.items()
                }
            }
    return {"M": stamp}


def _encode_contribution(c: Contribution) -> str:
    parts = [str(c.base), str(c.watermark)]
    parts.extend(f"{t.encode()}:{d}" for t, d in sorted(c.deltas.items()))
    return " ".join(parts)


def encode(table: Table, version: Version) -> Item:
    """The whole item: key, shown values, stamp."""
    item: Item = copy.deepcopy(version.key)
    item.update(copy.deepcopy(version.values()))
    item[table.stamp_attribute] = encode_stamp(version)
    return item


# -- changes ----------------------------------------------------------------


class _Remove:
    """The value that removes an attribute in a dict of changes."""

    _instance: Optional[_Remove] = None

    def __new__(cls) -> _Remove:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REMOVE"


#: ``writer.update(region, key, {"old": REMOVE})`` removes ``old``.
REMOVE = _Remove()


@dataclass(frozen=True)
class _Set:
    value: AttributeValue


@dataclass(frozen=True)
class _Add:
    delta: int


_Change = Union[_Set, _Remove, _Add]


class Draft:
    """The app's view of an item during an update: its current values and
    the changes made to them. A change function may run more than once (the
    item changed under the write): it should only edit the draft."""

    def __init__(self, current: Mapping[str, AttributeValue]) -> None:
        self._current: dict[str, AttributeValue] = dict(current)
        self._changes: dict[str, _Change] = {}

    def get(self, name: str) -> Optional[AttributeValue]:
        """The value of ``name`` with this draft's changes applied."""
        change = self._changes.get(name)
        if isinstance(change, _Set):
            return change.value
        if isinstance(change, _Remove):
            return None
        if isinstance(change, _Add):
            now = _i64(str(self._current.get(name, {}).get("N", "0"))) or 0
            return {"N": str(now + change.delta)}
        return self._current.get(name)

    def __getitem__(self, name: str) -> AttributeValue:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def set(self, name: str, value: AttributeValue) -> Draft:
        self._changes[name] = _Set(value)
        return self

    def __setitem__(self, name: str, value: AttributeValue) -> None:
        self.set(name, value)

    def remove(self, name: str) -> Draft:
        self._changes[name] = REMOVE
        return self

    def __delitem__(self, name: str) -> None:
        self.remove(name)

    def increment(self, name: str, delta: int) -> Draft:
        """Adds ``delta`` to a counter attribute (negative to decrement)."""
        change = self._changes.get(name)
        if isinstance(change, _Add):
            self._changes[name] = _Add(change.delta + delta)
        elif isinstance(change, _Set) and _i64(str(change.value.get("N", ""))) is not None:
            # A value set in this draft (or adopted from a legacy item) and
            # then incremented: the increment adds to it.
            self._changes[name] = _Set({"N": str(int(change.value["N"]) + delta)})
        else:
            self._changes[name] = _Add(delta)
        return self

    def names(self) -> Iterator[str]:
        """Every attribute the draft currently holds a value for."""
        for name in sorted(set(self._current) | set(self._changes)):
            if self.get(name) is not None:
                yield name

    def changed(self) -> bool:
        return bool(self._changes)

    def apply_changes(self, changes: Mapping[str, Union[AttributeValue, _Remove]]) -> Draft:
        """Sets every value of ``changes``; :data:`REMOVE` removes."""
        for name, value in changes.items():
            if isinstance(value, _Remove):
                self.remove(name)
            else:
                self.set(name, value)
        return self


Change = Union[Callable[[Draft], Any], Mapping[str, Union[AttributeValue, _Remove]]]


def as_function(change: Change) -> Callable[[Draft], Any]:
    if callable(change):
        return change
    mapping = change
    return lambda draft: draft.apply_changes(mapping)


# -- writing ------------------------------------------------------------------


@dataclass(frozen=True)
class WriteContext:
    """The writer's Region, the write's time (epoch ms) and nonce (u32)."""

    region: str
    time_ms: int
    nonce: int


@dataclass(frozen=True)
class Condition:
    """What the put requires of the item it replaces."""

    kind: Literal["not_exists", "dot_is", "unstamped"]
    dot: Optional[str] = None

    def expression(self, table: Table) -> dict[str, Any]:
        """``ConditionExpression`` and its names and values, for PutItem."""
        if self.kind == "not_exists":
            return {
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": table.partition_key},
            }
        if self.kind == "unstamped":
            return {
                "ConditionExpression": "attribute_exists(#pk) AND attribute_not_exists(#hw)",
                "ExpressionAttributeNames": {"#pk": table.partition_key, "#hw": table.stamp_attribute},
            }
        return {
            "ConditionExpression": "attribute_exists(#pk) AND #hw.#dot = :dot",
            "ExpressionAttributeNames": {"#pk": table.partition_key, "#hw": table.stamp_attribute, "#dot": "dot"},
            "ExpressionAttributeValues": {":dot": {"S": self.dot}},
        }


@dataclass
class Planned:
    """A write, ready: the new version, the item to put and its condition."""

    version: Version
    item: Item
    condition: Condition


def empty_version(key: Item, region: str) -> Version:
    return Version(copy.deepcopy(key), Header(region, 0, "app", Tick(0, 0)), {}, {}, {}, None)


def apply(
    table: Table,
    base: Version,
    draft: Draft,
    ctx: WriteContext,
    home: Optional[Home] = None,
) -> Version:
    """The next version: a new dot of ``ctx.region`` on every changed
    attribute, counter deltas on that dot, windows trimmed."""
    nxt = copy.deepcopy(base)
    tick = Tick(base.next_counter(ctx.region), ctx.nonce)
    nxt.header = Header(ctx.region, ctx.time_ms, "app", tick)
    at = TimedDot(ctx.region, tick, ctx.time_ms)
    nxt.known.setdefault(ctx.region, set()).add(tick)
    if home is not None:
        nxt.home = copy.deepcopy(home)
    for name in sorted(draft._changes):
        change = draft._changes[name]
        if table.is_reserved(name):
            raise ReservedAttribute(name)
        if name in table.counters:
            if isinstance(change, _Add):
                delta = change.delta
            elif isinstance(change, _Remove):
                raise CounterRemoved(name)
            else:
                target = _i64(str(change.value.get("N"))) if "N" in change.value else None
                if target is None:
                    raise CounterValue(name)
                delta = target - counter_total(nxt.counters.get(name, {}))
            if not I64_MIN <= delta <= I64_MAX:
                raise Overflow(name)
            counter = nxt.counters.setdefault(name, {})
            counter.setdefault(ctx.region, Contribution()).deltas[tick] = delta
            if not I64_MIN <= counter_total(counter) <= I64_MAX:
                raise Overflow(name)
            nxt.attrs.pop(name, None)
            continue
        if isinstance(change, _Add):
            raise NotACounter(name)
        value = change.value if isinstance(change, _Set) else None
        register = nxt.attrs.get(name)
        if register is None:
            unchanged = value is None
        else:
            unchanged = not register.many and register.siblings[0].value == value
        if not unchanged:
            nxt.attrs[name] = Register.one(at, copy.deepcopy(value))
    nxt.trim(table.dot_window)
    nxt.check_arithmetic()
    return nxt


def _values(table: Table, item: Mapping[str, AttributeValue]) -> Item:
    return {k: v for k, v in item.items() if not table.is_reserved(k)}


def first_version(
    table: Table, item: Mapping[str, AttributeValue], ctx: WriteContext, home: Optional[Home] = None
) -> Version:
    key = table.key_of(item)
    draft = Draft({})
    draft.apply_changes(_values(table, item))
    return apply(table, empty_version(key, ctx.region), draft, ctx, home)


def read_version(table: Table, item: Mapping[str, AttributeValue], region: str = "") -> Version:
    """The version an item shows: its plain writers' edits (every attribute of
    an item without a stamp) adopted (:func:`adopt_plain`). ``region`` is
    not used (kept for callers that pass it)."""
    return adopt_plain(table, item).version


def _moved_home(table: Table, base: Version, draft: Draft) -> Optional[Home]:
    name = table.home_attribute
    if name is None or base.home is None:
        return None
    value = draft.get(name)
    if not isinstance(value, Mapping) or not isinstance(value.get("S"), str):
        return None
    text = str(value["S"])
    if text == base.home.region:
        return None
    if not is_region(text):
        raise BadHome(name)
    return Home(text, base.home.epoch + 1)


def plan_modify(
    table: Table,
    read: Optional[Mapping[str, AttributeValue]],
    ctx: WriteContext,
    change: Callable[[Draft], Any],
    *,
    home: Optional[Home] = None,
    tombstone_ok: bool = False,
) -> Planned:
    """One attempt of a read-modify-write: the item to put for ``read``."""
    if read is None:
        raise NotFound()
    is_tombstone = table.ttl_attribute in read
    if is_tombstone and not tombstone_ok:
        raise NotFound()
    if not is_tombstone and tombstone_ok:
        raise AlreadyExists()
    # What plain writers changed (all of an item without a stamp) is taken
    # in: this write records it.
    base = adopt_plain(table, read).version
    draft = Draft(base.values())
    if table.stamp_attribute in read:
        condition = Condition("dot_is", base.header.dot())
    else:
        condition = Condition("unstamped")
    change(draft)
    wanted = home if home is not None and (base.home is None or home.key() > base.home.key()) else None
    moved = _moved_home(table, base, draft)
    if moved is not None:
        wanted = moved
    nxt = apply(table, base, draft, ctx, wanted)
    return Planned(nxt, encode(table, nxt), condition)


def plan_insert(
    table: Table,
    read: Optional[Mapping[str, AttributeValue]],
    item: Mapping[str, AttributeValue],
    ctx: WriteContext,
    *,
    home: Optional[Home] = None,
) -> Planned:
    """An insert: a first version over no item, or a revival of a
    soft-deleted one; :class:`AlreadyExists` over a live item."""
    table.key_of(item)
    if table.stamp_attribute in item:
        raise ReservedAttribute(table.stamp_attribute)
    if read is None:
        version = first_version(table, item, ctx, home)
        return Planned(version, encode(table, version), Condition("not_exists"))
    values = _values(table, item)

    def revive(draft: Draft) -> None:
        draft.remove(table.ttl_attribute)
        draft.apply_changes(values)

    return plan_modify(table, read, ctx, revive, home=home, tombstone_ok=True)


def plan_update(
    table: Table,
    read: Optional[Mapping[str, AttributeValue]],
    change: Change,
    ctx: WriteContext,
    *,
    home: Optional[Home] = None,
) -> Planned:
    return plan_modify(table, read, ctx, as_function(change), home=home)


def plan_delete(table: Table, read: Optional[Mapping[str, AttributeValue]], ctx: WriteContext) -> Planned:
    """A soft delete: every plain attribute removed, the TTL attribute set."""
    expires = {"N": str(ctx.time_ms // 1000 + table.retention_seconds)}

    def delete(draft: Draft) -> None:
        for name in [n for n in draft.names() if n not in table.counters]:
            draft.remove(name)
        draft.set(table.ttl_attribute, expires)

    return plan_modify(table, read, ctx, delete)


def increments(changes: Iterable[tuple[str, int]]) -> Callable[[Draft], None]:
    """A change function adding each (attribute, delta)."""
    pairs = list(changes)

    def change(draft: Draft) -> None:
        for name, delta in pairs:
            draft.increment(name, delta)

    return change
