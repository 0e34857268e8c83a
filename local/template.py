"""Read template.yaml the way SAM does, for the local runner and the tests: which
function serves which API route. One source of truth for routing."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scripts.transform_template import expand_language_extensions

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that keeps CloudFormation short-form tags (!Ref, !Sub, !GetAtt …)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    """Turn a short tag into its long JSON form (``!Ref X`` → ``{"Ref": "X"}``)."""
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE, *, expand: bool = True) -> dict[str, Any]:
    """The template as parsed, its ``Fn::ForEach`` loops expanded with the parameters'
    defaults (``expand=False``: as written)."""
    doc = yaml.load(path.read_text(), Loader=_CfnLoader)
    return expand_language_extensions(doc) if expand else doc


@dataclass(frozen=True)
class Route:
    function_id: str  # logical id, e.g. SimilarFunction
    function_dir: str  # functions/<dir>/app.py
    method: str
    path: str  # API Gateway resource path, e.g. /target/{id}


def api_routes(template: dict[str, Any] | None = None) -> list[Route]:
    template = load_template() if template is None else template
    routes = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        function_dir = Path(str(props.get("CodeUri", ""))).name
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "Api":
                continue
            spec = event.get("Properties", {})
            routes.append(
                Route(logical_id, function_dir, str(spec["Method"]).upper(), str(spec["Path"]))
            )
    return routes


def function_properties(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each AWS::Serverless::Function's properties with Globals.Function merged in."""
    globals_ = doc.get("Globals", {}).get("Function", {})
    merged = {}
    for name, resource in doc["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = copy.deepcopy(globals_)
        for key, value in resource.get("Properties", {}).items():
            if key == "Environment":
                variables = props.setdefault("Environment", {}).setdefault("Variables", {})
                variables.update(value.get("Variables", {}))
            elif key == "Layers":
                props["Layers"] = props.get("Layers", []) + value
            else:
                props[key] = value
        merged[name] = props
    return merged


def function_variables(function_id: str, template: dict[str, Any] | None = None) -> dict[str, str]:
    """The environment variables the template gives ``function_id`` (its own over the
    Globals') whose values are plain strings (``!Ref`` and the like left out): what a local
    run applies to a function's process to be measured as deployed."""
    template = load_template() if template is None else template
    props = function_properties(template)[function_id]
    variables = props.get("Environment", {}).get("Variables", {})
    return {name: value for name, value in variables.items() if isinstance(value, str)}
