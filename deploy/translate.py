"""Translates template.yaml (SAM) to plain CloudFormation JSON, offline.

cfn-lint does not check the properties inside a function's `Events:` block;
after translation they are plain AWS::Lambda::EventSourceMapping properties
that it does check.  Usage: python deploy/translate.py IN.yaml OUT.json
"""
import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The template names no managed policies; nothing to look up online."""

    def load(self):
        return {}


def main(src, dst):
    # The translation needs a Region for pseudo parameters; any will do.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(src) as f:
        template = yaml_parse(f.read())
    # `sam package` would upload the code and put its S3 address here.
    for resource in template.get("Resources", {}).values():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in props:
            props["CodeUri"] = "s3://placeholder-bucket/code.zip"
    out = transform(template, {}, NoManagedPolicies())
    with open(dst, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
