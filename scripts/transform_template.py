"""Write the CloudFormation template SAM would deploy, so cfn-lint can check *that*.

``sam validate --lint`` (and cfn-lint on template.yaml) lint the SAM template; some faults
only exist after SAM's transform, e.g. the bucket ↔ triggered-function circular
dependency (the S3 notification SAM generates depends on the function's permission).
This script runs SAM's own translator offline, as ``sam package`` would, and writes JSON:

    python scripts/transform_template.py [template.yaml] [.aws-sam/transformed.json]
    cfn-lint .aws-sam/transformed.json

Needs only aws-sam-translator (in .venv-sam with the SAM CLI, and in .venv's dev extras).
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO / "template.yaml"
DEFAULT_OUTPUT = REPO / ".aws-sam" / "transformed.json"
# Where `sam package` would have uploaded the code; any s3:// URI satisfies the translator.
ARTIFACT_BUCKET = "s3://opencrs-artifacts/"


class _NoManagedPolicies:
    """The translator asks IAM for AWS managed policy ARNs only for policies given by
    name; the template uses policy templates, so no AWS call (and no account) is needed."""

    def load(self) -> dict[str, str]:
        return {}


def sam_transform(doc: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CloudFormation template SAM deploys for ``doc`` (a parsed SAM template)."""
    from samtranslator.translator.transform import transform

    doc = copy.deepcopy(doc)
    # As `sam package` would: local code paths become S3 locations.
    for resource in doc.get("Resources", {}).values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = ARTIFACT_BUCKET + props[key].strip("/")
    # The translator resolves AWS::Region / the partition through boto3's configuration.
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = saved or "us-east-1"
    try:
        return transform(doc, parameters or {}, _NoManagedPolicies())
    finally:
        if saved is None:
            del os.environ["AWS_DEFAULT_REGION"]


def load_sam_template(path: Path) -> dict[str, Any]:
    """Parse YAML with CloudFormation short tags (!Ref, !Sub …) the way SAM does."""
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(path.read_text())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 2 or any(a.startswith("-") for a in args):
        print(__doc__, file=sys.stderr)
        return 2
    template = Path(args[0]) if args else DEFAULT_TEMPLATE
    output = Path(args[1]) if len(args) > 1 else DEFAULT_OUTPUT
    from samtranslator.model.exceptions import InvalidDocumentException

    try:
        transformed = sam_transform(load_sam_template(template))
    except InvalidDocumentException as error:
        for cause in error.causes:
            print(f"error: {cause.message}", file=sys.stderr)
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(transformed, indent=2, sort_keys=True) + "\n")
    print(f"{template.name} -> {output} ({len(transformed.get('Resources', {}))} resources)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
