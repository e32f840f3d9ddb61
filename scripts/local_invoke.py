"""Table setup and checks for scripts/local-invoke.sh (boto3 comes with moto).

    python scripts/local_invoke.py setup ENDPOINT   create tables, seed Jaws
    python scripts/local_invoke.py check ENDPOINT   check the resolver's work
"""
import json
import sys

import boto3

TABLE, JOURNAL = "Movies", "MoviesJournal"
EVENT = "events/foreign-write.json"


def client(endpoint, region):
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def create(ddb, name, keys):
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": k, "KeyType": t} for k, _, t in keys],
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": ty} for k, ty, _ in keys],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def setup(endpoint):
    movies = [("year", "N", "HASH"), ("title", "S", "RANGE")]
    for region in ("us-east-1", "us-west-1"):
        create(client(endpoint, region), TABLE, movies)
    create(client(endpoint, "us-east-1"), JOURNAL, [("pk", "S", "HASH"), ("sk", "S", "RANGE")])
    # us-west-1, Jaws' home, holds Jaws as it was before the update.
    # us-east-1, where the app made the write, holds Jaws as it is after it.
    with open(EVENT) as f:
        change = json.load(f)["Records"][0]["dynamodb"]
    client(endpoint, "us-west-1").put_item(TableName=TABLE, Item=change["OldImage"])
    client(endpoint, "us-east-1").put_item(TableName=TABLE, Item=change["NewImage"])


def check(endpoint):
    jaws = client(endpoint, "us-west-1").get_item(
        TableName=TABLE, Key={"year": {"N": "1975"}, "title": {"S": "Jaws"}}, ConsistentRead=True
    )["Item"]
    assert jaws["rating"] == {"N": "8"}, f"Jaws in us-west-1: {jaws}"
    assert jaws["_hw"]["M"]["by"] == {"S": "resolver"}, jaws["_hw"]
    # A clean merge overwrote nothing: no conflict to journal.
    entries = client(endpoint, "us-east-1").scan(TableName=JOURNAL)["Items"]
    assert entries == [], entries
    print("ok: Jaws merged into us-west-1 (rating 8, stamped by the resolver); no conflict journaled")


if __name__ == "__main__":
    {"setup": setup, "check": check}[sys.argv[1]](sys.argv[2])
