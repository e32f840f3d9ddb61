"""The resolver's pure path as a Python Lambda user would write it.

    python bench/python_reference.py EVENT.json [--runs 30] [--local us-east-1] [--serve]

Parses the stream event JSON, reads the stamp header (`_hw`) and the home
attribute of each record's images with boto3's TypeDeserializer, classifies
each record (unattributed, no-op, clobber, replicated, echo, foreign, home
write) as the resolver does, and merges every foreign write into the home
copy (its old image stands in for it, as in the Rust bench) with plain dict
merges: the attributes whose last edit the home copy does not know come
from the foreign write. That merge does less than the Rust one (no merge
rules, no siblings, counters taken whole), which favours Python.

Three variants, each timed over the same event:
- lean: only `_hw` and the home attribute are deserialized for every
  record; whole images only for the foreign writes (what the Rust resolver
  does);
- whole: every image deserialized whole first, the way most handlers start;
- raw: the header read straight from the DynamoDB JSON dicts (no
  TypeDeserializer), whole images only for the foreign writes: the fastest
  plain Python we could write.

Prints one JSON object: per variant the median and min wall ms, the
median CPU ms of the thread (time.thread_time: what counts on a shared
machine) and every run's wall and CPU ms, and the class counts.

With --serve it runs one variant per line of standard input instead (its
name), answering each with a line of JSON: the harness
(scripts/bench-lambda.sh) takes turns with it one run at a time.
"""

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter

import boto3
from boto3.dynamodb.types import TypeDeserializer

STAMP = "_hw"
HOME_ATTRIBUTE = "home_region"
DESERIALIZER = TypeDeserializer()
deserialize = DESERIALIZER.deserialize


def deserialize_image(image):
    return {name: deserialize(value) for name, value in image.items()}


def parse_dot(text):
    region, counter, nonce = text.rsplit(":", 2)
    return region, int(counter), nonce


def knows(stamp, dot):
    """Whether a stamp's window for the dot's Region includes the dot (or
    has moved past it)."""
    region, counter, nonce = dot
    window = stamp.get("k", {}).get(region)
    if window is None:
        return False
    lowest = None
    for entry in window.split():
        c, n = entry.split(":")
        c = int(c)
        if c == counter and n == nonce:
            return True
        lowest = c if lowest is None else min(lowest, c)
    return lowest is not None and counter < lowest


def same_data(a, b):
    def data(image):
        return {k: v for k, v in image.items() if k != STAMP}

    return data(a) == data(b)


def is_ttl_delete(record):
    identity = record.get("userIdentity") or {}
    return (
        identity.get("type") == "Service"
        and identity.get("principalId") == "dynamodb.amazonaws.com"
    )


def classify(name, ttl, new_stamp, old_stamp, new_home, local, old, new):
    """The resolver's classes; `old`/`new` are only compared when the dots
    are equal (rare)."""
    if name == "REMOVE":
        return "ttl-delete" if ttl else "hard-delete"
    if new_stamp is None:
        return "unattributed"
    if old_stamp is not None and old_stamp["dot"] == new_stamp["dot"]:
        return "no-op" if same_data(old, new) else "unattributed"
    if (
        old_stamp is not None
        and old_stamp["o"] == local
        and new_stamp["o"] != local
        and not knows(new_stamp, parse_dot(old_stamp["dot"]))
    ):
        return "clobber"
    if new_stamp["o"] != local:
        return "replicated"
    if new_stamp["by"] == "resolver":
        return "echo"
    if new_home is not None and new_home != local:
        return "foreign"
    return "home-write"


def merge(home, foreign):
    """Plain dict merge: every attribute whose last edit (its group in the
    foreign stamp's `d`) the home copy does not know comes from the foreign
    write; the windows are joined."""
    home_stamp, foreign_stamp = home[STAMP], foreign[STAMP]
    merged = dict(home)
    d = dict(home_stamp.get("d", {}))
    for group, attributes in foreign_stamp.get("d", {}).items():
        region, counter, nonce, _ = group.split(":")
        if knows(home_stamp, (region, int(counter), nonce)):
            continue
        d[group] = attributes
        for attribute in attributes:
            if attribute in foreign:
                merged[attribute] = foreign[attribute]
            else:
                merged.pop(attribute, None)
    for attribute in foreign_stamp.get("c", {}):
        merged[attribute] = foreign[attribute]
    k = dict(home_stamp.get("k", {}))
    for region, window in foreign_stamp.get("k", {}).items():
        k[region] = " ".join(
            sorted(set(k.get(region, "").split()) | set(window.split()))
        )
    merged[STAMP] = {**home_stamp, "k": k, "d": d, "by": "resolver"}
    return merged


def lean(text, local):
    event = json.loads(text)
    classes = Counter()
    for record in event["Records"]:
        change = record["dynamodb"]
        new, old = change.get("NewImage"), change.get("OldImage")
        new_stamp = deserialize(new[STAMP]) if new and STAMP in new else None
        old_stamp = deserialize(old[STAMP]) if old and STAMP in old else None
        new_home = (
            deserialize(new[HOME_ATTRIBUTE]) if new and HOME_ATTRIBUTE in new else None
        )
        cls = classify(
            record["eventName"],
            is_ttl_delete(record),
            new_stamp,
            old_stamp,
            new_home,
            local,
            old,
            new,
        )
        classes[cls] += 1
        if cls == "foreign":
            merge(deserialize_image(old), deserialize_image(new))
    return classes


def raw_header(image):
    """The stamp header straight from the DynamoDB JSON, no TypeDeserializer."""
    if not image or STAMP not in image:
        return None
    stamp = image[STAMP]["M"]
    return {
        "o": stamp["o"]["S"],
        "by": stamp["by"]["S"],
        "dot": stamp["dot"]["S"],
        "k": {
            region: window["S"]
            for region, window in stamp.get("k", {}).get("M", {}).items()
        },
    }


def raw(text, local):
    event = json.loads(text)
    classes = Counter()
    for record in event["Records"]:
        change = record["dynamodb"]
        new, old = change.get("NewImage"), change.get("OldImage")
        home = new.get(HOME_ATTRIBUTE) if new else None
        new_home = home.get("S") if home else None
        cls = classify(
            record["eventName"],
            is_ttl_delete(record),
            raw_header(new),
            raw_header(old),
            new_home,
            local,
            old,
            new,
        )
        classes[cls] += 1
        if cls == "foreign":
            merge(deserialize_image(old), deserialize_image(new))
    return classes


def whole(text, local):
    event = json.loads(text)
    classes = Counter()
    for record in event["Records"]:
        change = record["dynamodb"]
        new = deserialize_image(change["NewImage"]) if "NewImage" in change else None
        old = deserialize_image(change["OldImage"]) if "OldImage" in change else None
        new_stamp = new.get(STAMP) if new else None
        old_stamp = old.get(STAMP) if old else None
        new_home = new.get(HOME_ATTRIBUTE) if new else None
        cls = classify(
            record["eventName"],
            is_ttl_delete(record),
            new_stamp,
            old_stamp,
            new_home,
            local,
            old,
            new,
        )
        classes[cls] += 1
        if cls == "foreign":
            merge(old, new)
    return classes


VARIANTS = {"lean": lean, "whole": whole, "raw": raw}


def checked_classes(text, local):
    """Each variant once (a warm-up), and the classes they all find."""
    classes = None
    for variant in VARIANTS.values():
        found = variant(text, local)
        if classes is not None and found != classes:
            raise SystemExit(f"the variants disagree: {classes} vs {found}")
        classes = found
    return classes


def run_once(variant, text, local):
    """One run: its CPU ms (of this thread) and wall ms."""
    start, start_cpu = time.perf_counter(), time.thread_time()
    variant(text, local)
    cpu = (time.thread_time() - start_cpu) * 1e3
    return cpu, (time.perf_counter() - start) * 1e3


def about(classes):
    return {
        "python": platform.python_version(),
        "boto3": boto3.__version__,
        "classes": dict(classes),
    }


def timed(path, local, runs):
    with open(path) as f:
        text = f.read()
    classes = checked_classes(text, local)
    results = {}
    for name, variant in VARIANTS.items():
        cpu, wall = zip(*(run_once(variant, text, local) for _ in range(runs)))
        results[name] = {
            "median_ms": statistics.median(wall),
            "min_ms": min(wall),
            "median_cpu_ms": statistics.median(cpu),
            "wall_ms": list(wall),
            "cpu_ms": list(cpu),
        }
    return {**about(classes), **results}


def serve(path, local):
    """One run per line of standard input, naming a variant, each answered
    on standard output with a line of JSON (`cpu_ms`, `wall_ms`), after a
    first line with the versions and the classes: so that a harness can
    take turns with Python one run at a time."""
    with open(path) as f:
        text = f.read()
    print(json.dumps(about(checked_classes(text, local))), flush=True)
    for line in sys.stdin:
        cpu, wall = run_once(VARIANTS[line.strip()], text, local)
        print(json.dumps({"cpu_ms": cpu, "wall_ms": wall}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("event")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--local", default="us-east-1", help="the Region whose stream this is"
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="run the variant each line of standard input names, one at a time",
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.event, args.local)
    else:
        print(json.dumps(timed(args.event, args.local, args.runs)))


if __name__ == "__main__":
    main()
