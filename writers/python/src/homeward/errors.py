"""Homeward's exceptions.

Messages name attributes, fields and Regions, never an item's values (error
texts reach logs, and items hold personal data). Every refused write is a
:class:`WriteRefused`: nothing was written. ``kind`` is the error kind the
conformance vectors use.
"""

from __future__ import annotations


class HomewardError(Exception):
    """Base of every Homeward error."""

    kind: str = "other"


class ConfigError(HomewardError):
    """A bad table, rule or strategy configuration."""

    kind = "config"


class WriteRefused(HomewardError):
    """The write was refused before anything was written."""


class NotFound(WriteRefused):
    """No item with this key (or only a soft-deleted one)."""

    kind = "not_found"

    def __init__(self) -> None:
        super().__init__("no item with this key")


class AlreadyExists(WriteRefused):
    """An insert found a live item with this key."""

    kind = "already_exists"

    def __init__(self) -> None:
        super().__init__("an item with this key already exists")


class AttributeRefused(WriteRefused):
    """A refusal about one attribute, named in ``attribute``."""

    message = "attribute `{attribute}` cannot be written"

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute
        super().__init__(self.message.format(attribute=attribute))


class ReservedAttribute(AttributeRefused):
    kind = "reserved"
    message = "attribute `{attribute}` is a key or the stamp attribute and cannot be changed"


class NotACounter(AttributeRefused):
    kind = "not_a_counter"
    message = "attribute `{attribute}` is not configured as a counter; only counter attributes take increments"


class CounterValue(AttributeRefused):
    kind = "counter_value"
    message = "counter attribute `{attribute}` needs a whole number"


class CounterRemoved(AttributeRefused):
    kind = "counter_removed"
    message = "counter attribute `{attribute}` cannot be removed (set it to 0, or delete the item)"


class Overflow(AttributeRefused):
    kind = "overflow"
    message = "`{attribute}` would overflow"


class BadHome(AttributeRefused):
    kind = "home"
    message = "the home in `{attribute}` is not a Region name"


class BadKey(AttributeRefused):
    kind = "bad_key"
    message = "bad key: attribute `{attribute}` is missing or not a string, number or binary"


class FixedHome(WriteRefused):
    """The strategy's homes cannot move (key-prefix, table)."""

    kind = "home"


class StampError(WriteRefused):
    """The stored item's stamp cannot be read; ``field`` names where."""

    kind = "stamp"

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(f"stamp field `{field}` is malformed: {reason}")


class CounterMismatch(StampError):
    """A counter attribute a plain writer (outside the stamp protocol) set to
    something that is not a whole number: it cannot be adopted as a
    contribution. ``attribute`` (and ``field``) name it; ``found`` is the
    value's type, never the value."""

    def __init__(self, attribute: str, found: str) -> None:
        self.attribute = attribute
        self.found = found
        WriteRefused.__init__(
            self,
            f"counter attribute `{attribute}` holds a {found} value, not a whole number "
            "(written outside the stamp protocol); it cannot be adopted",
        )
        self.field = attribute


class TooLarge(WriteRefused):
    kind = "too_large"

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"the item would be {size} bytes, over DynamoDB's 409600-byte limit")


class Contended(HomewardError):
    """The item kept changing under the write; nothing was written."""

    kind = "contended"

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        super().__init__(f"gave up after {attempts} attempts: the item kept changing under the write")


class Unavailable(HomewardError):
    """A Region did not answer or kept throttling (after retries).

    The write may or may not have taken effect when ``ambiguous``; trying
    again is safe (every write is conditional).
    """

    kind = "unavailable"

    def __init__(self, region: str, reason: str, *, ambiguous: bool = False) -> None:
        self.region = region
        self.reason = reason
        self.ambiguous = ambiguous
        super().__init__(f"DynamoDB in {region}: {reason}")


class Rejected(HomewardError):
    """DynamoDB refused the request itself (validation, access); retrying cannot help."""

    kind = "rejected"

    def __init__(self, region: str, code: str) -> None:
        self.region = region
        self.code = code
        super().__init__(f"DynamoDB in {region} rejected the request: {code}")
