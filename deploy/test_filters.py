"""The resolver's FilterCriteria, checked against the sample events.

Reads the patterns from the translated template (target/deploy/template.json),
resolves them for each record's Region, and matches them with a small
matcher for the subset of Lambda's filter syntax the template uses (exact
strings, prefix, anything-but, exists). Usage: python deploy/test_filters.py JSON
"""
import copy
import json
import sys

STAMP = "_hw"


def leaf(rules, value):
    """One leaf: a list of alternatives, any of which may match."""
    for rule in rules:
        if isinstance(rule, dict):
            if "exists" in rule:
                if (value is not None) == rule["exists"]:
                    return True
            elif value is None:
                continue
            elif "prefix" in rule:
                if isinstance(value, str) and value.startswith(rule["prefix"]):
                    return True
            elif "anything-but" in rule:
                if value not in rule["anything-but"]:
                    return True
            else:
                raise ValueError(f"unsupported filter rule {rule}")
        elif value is not None and value == rule:
            return True
    return False


def matches(pattern, event):
    for key, want in pattern.items():
        got = event.get(key) if isinstance(event, dict) else None
        if isinstance(want, list):
            if not leaf(want, got if not isinstance(got, (dict, list)) else None):
                return False
        elif not matches(want, got if isinstance(got, dict) else None):
            return False
    return True


def mappings(template):
    """The resolver's event source mappings: (the resolver's, the monitor's)."""
    found = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    resolver = [m for m in found if "DestinationConfig" in m]
    monitor = [m for m in found if "DestinationConfig" not in m]
    assert len(resolver) == 1 and len(monitor) == 1, found
    return resolver[0], monitor[0]


def patterns(mapping, region):
    out = []
    for f in mapping["FilterCriteria"]["Filters"]:
        text = f["Pattern"]
        if isinstance(text, dict):
            text = text["Fn::Sub"]
        text = text.replace("${AWS::Region}", region).replace("${StampAttribute}", STAMP)
        out.append(json.loads(text))
    assert 1 <= len(out) <= 5, "Lambda takes 1 to 5 filters"
    return out


def kept(template, record):
    """Whether the resolver's mapping delivers the record."""
    return any(matches(p, record) for p in patterns(mappings(template)[0], record["awsRegion"]))


def monitored(template, record):
    """Whether the replication monitor's mapping delivers the record."""
    return any(matches(p, record) for p in patterns(mappings(template)[1], record["awsRegion"]))


def records(name):
    with open(f"events/{name}.json") as f:
        return json.load(f)["Records"]


def test_matcher():
    assert leaf(["a"], "a") and not leaf(["a"], "b") and not leaf(["a"], None)
    assert leaf([{"prefix": "us-"}], "us-east-1") and not leaf([{"prefix": "eu-"}], "us-east-1")
    assert leaf([{"anything-but": ["x"]}], "y") and not leaf([{"anything-but": ["x"]}], "x")
    assert not leaf([{"anything-but": ["x"]}], None), "anything-but needs the field"
    assert leaf([{"exists": False}], None) and not leaf([{"exists": False}], "v")
    assert matches({"a": {"b": [{"exists": False}]}}, {}), "missing parents count as missing"
    assert not matches({"a": {"b": ["v"]}}, {"a": {}})


def test_samples(template):
    expected = {
        "foreign-write": [True],
        "home-write": [True],
        "clobber": [True],
        "echo": [False],
        "unattributed": [True],
        "ttl-delete": [False],
        "hard-delete": [True],
        # The filter cannot tell "includes the old version"; the resolver does.
        "replicated": [True],
        "malformed": [True, True, True, True],
    }
    for name, want in expected.items():
        got = [kept(template, r) for r in records(name)]
        assert got == want, f"{name}: kept {got}, expected {want}"
    # The monitor sees what replication brought here, and nothing the
    # resolver must act on (so the two mappings never share an action).
    monitor = {
        "foreign-write": [False],
        "home-write": [False],
        "clobber": [False],
        "echo": [False],
        "unattributed": [False],
        "ttl-delete": [False],
        "hard-delete": [False],
        "replicated": [False],
        "malformed": [False, False, False, False],
    }
    for name, want in monitor.items():
        got = [monitored(template, r) for r in records(name)]
        assert got == want, f"{name}: monitored {got}, expected {want}"
    # A copy over a version from elsewhere: the monitor's, not the resolver's.
    copy_of = copy.deepcopy(records("replicated")[0])
    copy_of["dynamodb"]["OldImage"][STAMP]["M"]["o"]["S"] = "eu-west-1"
    assert monitored(template, copy_of) and not kept(template, copy_of)
    first = copy.deepcopy(records("replicated")[0])
    first["eventName"] = "INSERT"
    del first["dynamodb"]["OldImage"]
    assert monitored(template, first) and not kept(template, first)
    # Replicated writes over a version that was not written here: dropped.
    r = records("foreign-write")[0]
    elsewhere = copy.deepcopy(r)
    elsewhere["awsRegion"] = "eu-west-1"
    assert not kept(template, elsewhere)
    insert = copy.deepcopy(r)
    insert["awsRegion"], insert["eventName"] = "us-west-1", "INSERT"
    del insert["dynamodb"]["OldImage"]
    assert not kept(template, insert)


def test_event_source(template):
    """What the resolver's safety rests on, beyond the filters."""
    resources = template["Resources"].values()
    mapping, monitor = mappings(template)
    # The monitor needs no backlog (old lag is no news) and no destination.
    assert monitor["StartingPosition"] == "LATEST", monitor["StartingPosition"]
    # Processing is idempotent: a recreated mapping must not skip a backlog.
    assert mapping["StartingPosition"] == "TRIM_HORIZON", mapping["StartingPosition"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 <= mapping["MaximumRetryAttempts"] <= 10000
    assert "OnFailure" in mapping["DestinationConfig"]
    # Logs are kept for a bounded time.
    groups = [r["Properties"] for r in resources if r["Type"] == "AWS::Logs::LogGroup"]
    assert len(groups) == 2 and all("RetentionInDays" in g for g in groups), groups


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        template = json.load(f)
    test_matcher()
    test_samples(template)
    test_event_source(template)
    print("filters: every sample event kept or dropped as the resolver needs")
