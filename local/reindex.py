"""Re-index a library of the local stack (``make run``) as the deployed stack does: the
template's ReindexStateMachine, played by local.state_machine, its steps run by the
re-index function's own handler against the stack's moto server.

    .venv/bin/python -m local.reindex --endpoint http://127.0.0.1:PORT --shards 4
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from local.runtime import (
    FUNCTION_ARN_PREFIX,
    LOCAL_BUCKET,
    LOCAL_TABLE,
    load_handler,
    local_environment,
)
from local.state_machine import StateMachine, lambda_invoker
from local.template import load_template
from opencrs.store.aws import reset_clients

REINDEX_FUNCTION_ARN = f"{FUNCTION_ARN_PREFIX}ReindexFunction"


def reindex_machine(handler: Callable[[dict, Any], Any] | None = None) -> StateMachine:
    """The template's re-index state machine, its function being ``handler`` (by default
    a fresh instance of functions/reindex)."""
    props = load_template()["Resources"]["ReindexStateMachine"]["Properties"]
    function = handler or load_handler("reindex")
    substitutions = {}
    for name, value in props["DefinitionSubstitutions"].items():
        if value != {"Fn::GetAtt": ["ReindexFunction", "Arn"]}:
            raise NotImplementedError(f"substitution {name} = {value} not played locally")
        substitutions[name] = REINDEX_FUNCTION_ARN
    return StateMachine(
        props["Definition"], lambda_invoker({REINDEX_FUNCTION_ARN: function}), substitutions
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the moto server make run printed")
    parser.add_argument("--gallery", default="default")
    parser.add_argument("--shards", type=int, required=True)
    args = parser.parse_args()
    os.environ.update(local_environment(args.endpoint, LOCAL_BUCKET, LOCAL_TABLE))
    reset_clients()
    result = reindex_machine().run({"gallery": args.gallery, "shards": args.shards})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
