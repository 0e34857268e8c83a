"""Write the CloudFormation template SAM would deploy, so cfn-lint can check *that*.

``sam validate --lint`` (and cfn-lint on template.yaml) lint the SAM template; some faults
only exist after SAM's transform, e.g. the bucket ↔ triggered-function circular
dependency (the S3 notification SAM generates depends on the function's permission).
This script runs SAM's own translator offline, as ``sam package`` would, and writes JSON:

    python scripts/transform_template.py [template.yaml] [.aws-sam/transformed.json]
    cfn-lint .aws-sam/transformed.json

Needs only aws-sam-translator (in .venv-sam with the SAM CLI, and in .venv's dev extras).
The template's ``AWS::LanguageExtensions`` (its ``Fn::ForEach`` of partition functions) is
expanded first, as CloudFormation does before SAM's transform; ``sam validate --lint`` and
cfn-lint check the template itself with their own expansion.
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


LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
FOR_EACH = "Fn::ForEach::"


def expand_language_extensions(
    doc: dict[str, Any], parameters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``doc`` with its ``Fn::ForEach::`` resource loops expanded and the
    ``AWS::LanguageExtensions`` transform removed, for the one shape this template uses:
    ``[Identifier, collection, {"Key${Identifier}": fragment}]`` in Resources, the
    collection a list or the Ref of a CommaDelimitedList parameter (``parameters``
    override its default), the identifier substituted in keys, ``!Sub`` strings and
    ``!Ref Identifier``. Anything else raises ValueError rather than expanding wrongly."""
    doc = copy.deepcopy(doc)
    transform = doc.get("Transform")
    if isinstance(transform, list):
        rest = [t for t in transform if t != LANGUAGE_EXTENSIONS]
        doc["Transform"] = rest[0] if len(rest) == 1 else rest
    resources: dict[str, Any] = {}
    for key, value in doc.get("Resources", {}).items():
        if not key.startswith(FOR_EACH):
            resources[key] = value
            continue
        identifier, collection, fragments = value
        for item in _collection(doc, collection, parameters or {}):
            for name, fragment in fragments.items():
                expanded = _substitute(name, identifier, item)
                if FOR_EACH in expanded or expanded in resources:
                    raise ValueError(f"{key}: nested loops or duplicate {expanded} not supported")
                resources[expanded] = _expand(fragment, identifier, item)
    doc["Resources"] = resources
    return doc


def _collection(doc: dict[str, Any], collection: Any, parameters: dict[str, Any]) -> list[str]:
    if isinstance(collection, list):
        return [str(v) for v in collection]
    if isinstance(collection, dict) and set(collection) == {"Ref"}:
        name = collection["Ref"]
        spec = doc.get("Parameters", {}).get(name, {})
        if spec.get("Type") != "CommaDelimitedList":
            raise ValueError(f"Fn::ForEach over {name}: not a CommaDelimitedList parameter")
        value = parameters.get(name, spec.get("Default", ""))
        items = value if isinstance(value, list) else str(value).split(",")
        return [str(v).strip() for v in items if str(v).strip()]
    raise ValueError(f"Fn::ForEach collection {collection!r} not supported")


def _substitute(text: str, identifier: str, item: str) -> str:
    return text.replace("${" + identifier + "}", item).replace("&{" + identifier + "}", item)


def _expand(value: Any, identifier: str, item: str) -> Any:
    if isinstance(value, list):
        return [_expand(v, identifier, item) for v in value]
    if not isinstance(value, dict):
        return value
    if value == {"Ref": identifier}:
        return item
    if set(value) == {"Fn::Sub"}:
        sub = value["Fn::Sub"]
        if isinstance(sub, str):
            return {"Fn::Sub": _substitute(sub, identifier, item)}
        text, variables = sub
        return {
            "Fn::Sub": [_substitute(text, identifier, item), _expand(variables, identifier, item)]
        }
    return {k: _expand(v, identifier, item) for k, v in value.items()}


def sam_transform(doc: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CloudFormation template SAM deploys for ``doc`` (a parsed SAM template)."""
    from samtranslator.translator.transform import transform

    doc = expand_language_extensions(doc, parameters)
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
