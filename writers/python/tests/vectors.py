"""Reading the conformance vectors (conformance/vectors/*.json)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from homeward.protocol import Table

VECTORS = Path(__file__).resolve().parents[3] / "conformance" / "vectors"


def load(name: str) -> list[dict[str, Any]]:
    doc = json.loads((VECTORS / f"{name}.json").read_text())
    assert doc["format"] == 1
    cases: list[dict[str, Any]] = doc["cases"]
    return cases


def write_files() -> list[str]:
    return sorted(p.stem for p in VECTORS.glob("*.json") if p.stem != "routing")


def value(v: Any) -> Any:
    """DynamoDB JSON as the vectors write it -> as boto3's client hands it (B as bytes)."""
    ((kind, inner),) = v.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in inner]}
    if kind == "M":
        return {"M": {k: value(x) for k, x in inner.items()}}
    if kind == "L":
        return {"L": [value(x) for x in inner]}
    return {kind: inner}


def item(i: Any) -> Any:
    return None if i is None else {k: value(v) for k, v in i.items()}


def normal(v: Any) -> Any:
    """Sets as sorted lists, so that items compare structurally."""
    if isinstance(v, dict):
        if len(v) == 1:
            ((kind, inner),) = v.items()
            if kind in ("SS", "NS", "BS"):
                return {kind: sorted(inner)}
        return {k: normal(x) for k, x in v.items()}
    if isinstance(v, list):
        return [normal(x) for x in v]
    return v


def table(setup: dict[str, Any]) -> Table:
    t = setup["table"]
    return Table(
        partition_key=t["partition_key"],
        sort_key=t["sort_key"],
        stamp_attribute=t["stamp_attribute"],
        ttl_attribute=t["ttl_attribute"],
        retention_seconds=t["retention_seconds"],
        home_attribute=t["home_attribute"],
        counters=Table.counters_from_rules(setup["rules"]),
        dot_window=setup["dot_window"],
    )
