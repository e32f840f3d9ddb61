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
    """The resolver's event source mappings (one)."""
    found = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(found) == 1, found
    return found


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
    # Every write is kept: a plain writer's UpdateItem keeps whatever stamp
    # the item had (any Region's, app or resolver), so the only record that
    # shows its overwrite may look like an echo or a replicated write.
    expected = {
        "foreign-write": [True],
        "home-write": [True],
        "clobber": [True],
        "echo": [True],
        "unattributed": [True],
        "ttl-delete": [False],
        "hard-delete": [True],
        "replicated": [True],
        "malformed": [True, True, True, True],
    }
    for name, want in expected.items():
        got = [kept(template, r) for r in records(name)]
        assert got == want, f"{name}: kept {got}, expected {want}"
    # A plain UpdateItem made in eu-west-1 on an item last written by the
    # resolver in us-east-1: the stamp names neither eu-west-1 nor an app.
    plain = copy.deepcopy(records("echo")[0])
    plain["awsRegion"] = "eu-west-1"
    assert kept(template, plain)
    insert = copy.deepcopy(records("replicated")[0])
    insert["eventName"] = "INSERT"
    del insert["dynamodb"]["OldImage"]
    assert kept(template, insert)


def test_event_source(template):
    """What the resolver's safety rests on, beyond the filters."""
    resources = template["Resources"].values()
    (mapping,) = mappings(template)
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
