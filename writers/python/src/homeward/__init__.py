"""Homeward's writer for Python: stamped, conditional writes to a DynamoDB
global table written from several Regions, following Homeward's stamp
protocol, on boto3 DynamoDB clients you pass in.

>>> writer = Writer({"us-east-1": client}, "Movies", Table("year", "title"))
>>> writer.update("us-east-1", key, {"rating": {"N": "5"}})
"""

from .errors import (
    AlreadyExists,
    AttributeRefused,
    BadHome,
    BadKey,
    ConfigError,
    Contended,
    CounterMismatch,
    CounterRemoved,
    CounterValue,
    FixedHome,
    HomewardError,
    NotACounter,
    NotFound,
    Overflow,
    Rejected,
    ReservedAttribute,
    StampError,
    TooLarge,
    Unavailable,
    WriteRefused,
)
from .protocol import REMOVE, Condition, Draft, Home, Planned, Table, Version, WriteContext
from .writer import Backoff, Evacuations, HomeStrategy, Record, Router, Writer, Written

__all__ = [
    "REMOVE",
    "AlreadyExists",
    "AttributeRefused",
    "Backoff",
    "BadHome",
    "BadKey",
    "Condition",
    "ConfigError",
    "Contended",
    "CounterMismatch",
    "CounterRemoved",
    "CounterValue",
    "Draft",
    "Evacuations",
    "FixedHome",
    "Home",
    "HomeStrategy",
    "HomewardError",
    "NotACounter",
    "NotFound",
    "Overflow",
    "Planned",
    "Record",
    "Rejected",
    "ReservedAttribute",
    "Router",
    "StampError",
    "Table",
    "TooLarge",
    "Unavailable",
    "Version",
    "WriteContext",
    "WriteRefused",
    "Writer",
    "Written",
]
