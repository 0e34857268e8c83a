"""Step Functions, played locally for the state machines in template.yaml: their Amazon
States Language definition run as written, each Lambda task calling the function's own
handler. AWS has no Docker-free Step Functions that calls Lambda handlers (moto's
interpreter invokes its Docker Lambda), so the local runner and the tests run the
deployed definition here instead of a copy of its logic.

Only what the template uses is implemented: Pass, Task (``lambda:invoke``), Map (inline
items, run in threads up to MaxConcurrency), Choice (numeric and string comparisons), Fail;
InputPath / Parameters / ResultPath / OutputPath, Retry and Catch, ``States.MathAdd``.
Anything else raises NotImplementedError, so a template change the runner cannot play
fails the tests instead of being skipped.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from local.runtime import FakeLambdaContext

Invoke = Callable[[str, dict], Any]

_KNOWN_FIELDS = {
    "Type", "Next", "End", "Comment", "InputPath", "Parameters", "ResultPath", "OutputPath",
    "Resource", "Retry", "Catch", "ItemsPath", "ItemSelector", "ItemProcessor",
    "MaxConcurrency", "Choices", "Default", "Error", "Cause",
}  # fmt: skip
_MATH_ADD = re.compile(r"^States\.MathAdd\((\$[^,]*),\s*(-?\d+)\)$")


class ExecutionFailed(Exception):
    """The execution ended in a Fail state or an uncaught error, as Step Functions
    reports it: an error name and a cause."""

    def __init__(self, error: str, cause: str, caught: object = None) -> None:
        # ``caught``: the error a Catch put in the state before the Fail, as an execution's
        # history shows it.
        super().__init__(f"{error}: {cause}" + (f" (after {caught})" if caught else ""))
        self.error = error
        self.cause = cause
        self.caught = caught


class _TaskError(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(error)
        self.error = error
        self.cause = cause


def lambda_invoker(handlers: Mapping[str, Callable[[dict, Any], Any]]) -> Invoke:
    """Task invocations by function ARN, each handler called as Lambda would call it; an
    exception becomes the task error named after its class, as Lambda reports it."""

    def invoke(function: str, payload: dict) -> Any:
        handler = handlers[function]
        name = function.rsplit(":", 1)[-1]
        try:
            return handler(copy.deepcopy(payload), FakeLambdaContext(name, timeout_s=900))
        except Exception as error:
            cause = {"errorMessage": str(error), "errorType": type(error).__name__}
            raise _TaskError(type(error).__name__, json.dumps(cause)) from error

    return invoke


class StateMachine:
    def __init__(
        self,
        definition: Mapping[str, Any],
        invoke: Invoke,
        substitutions: Mapping[str, str] | None = None,
        retry_interval_scale: float = 0.0,
    ) -> None:
        text = json.dumps(definition)
        for name, value in (substitutions or {}).items():
            text = text.replace("${" + name + "}", value)
        self.definition = json.loads(text)
        self.invoke = invoke
        # Retry intervals as written times this (0 locally: retries come at once).
        self.retry_interval_scale = retry_interval_scale
        self.transitions: list[str] = []

    def run(self, execution_input: Any) -> Any:
        return self._run_states(self.definition, execution_input, {})

    # -- states -------------------------------------------------------------------------

    def _run_states(self, machine: Mapping[str, Any], data: Any, context: dict) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            unknown = set(state) - _KNOWN_FIELDS
            if unknown:
                raise NotImplementedError(f"{name}: {sorted(unknown)} not played locally")
            self.transitions.append(name)
            kind = state["Type"]
            if kind == "Fail":
                caught = data.get("error") if isinstance(data, dict) else None
                raise ExecutionFailed(
                    state.get("Error", "States.Fail"), state.get("Cause", ""), caught
                )
            if kind == "Choice":
                name = self._choose(state, data)
                continue
            try:
                data = self._run_state(state, data, context)
            except _TaskError as failure:
                handler = self._catcher(state, failure.error)
                if handler is None:
                    raise ExecutionFailed(failure.error, failure.cause) from None
                error = {"Error": failure.error, "Cause": failure.cause}
                data = _put(data, handler.get("ResultPath", "$"), error)
                name = handler["Next"]
                continue
            if state.get("End"):
                return data
            name = state["Next"]

    def _run_state(self, state: Mapping[str, Any], data: Any, context: dict) -> Any:
        kind = state["Type"]
        effective = _get(data, state.get("InputPath", "$"), context)
        if kind == "Pass":
            result = self._parameters(state.get("Parameters"), effective, context)
        elif kind == "Task":
            result = self._with_retries(state, lambda: self._task(state, effective, context))
        elif kind == "Map":
            result = self._map(state, effective, context)
        else:
            raise NotImplementedError(f"state type {kind} not played locally")
        if kind != "Pass" or "Parameters" in state:
            data = _put(data, state.get("ResultPath", "$"), result)
        return _get(data, state.get("OutputPath", "$"), context)

    def _task(self, state: Mapping[str, Any], data: Any, context: dict) -> Any:
        if state["Resource"] != "arn:aws:states:::lambda:invoke":
            raise NotImplementedError(f"task resource {state['Resource']} not played locally")
        parameters = self._parameters(state["Parameters"], data, context)
        payload = self.invoke(parameters["FunctionName"], parameters["Payload"])
        return {"StatusCode": 200, "Payload": payload, "ExecutedVersion": "$LATEST"}

    def _map(self, state: Mapping[str, Any], data: Any, context: dict) -> list[Any]:
        items = _get(data, state.get("ItemsPath", "$"), context)
        processor = state["ItemProcessor"]

        def run_item(indexed: tuple[int, Any]) -> Any:
            index, value = indexed
            item_context = {**context, "Map": {"Item": {"Index": index, "Value": value}}}
            selected = self._parameters(state.get("ItemSelector"), data, item_context)
            return self._run_states(processor, value if selected is None else selected, {})

        with ThreadPoolExecutor(max_workers=max(1, int(state.get("MaxConcurrency", 40)))) as pool:
            try:
                return list(pool.map(run_item, enumerate(items)))
            except ExecutionFailed as failed:  # a child's failure fails the Map
                raise _TaskError(failed.error, failed.cause) from None

    def _choose(self, state: Mapping[str, Any], data: Any) -> str:
        for rule in state["Choices"]:
            value = _get(data, rule["Variable"], {})
            for test, expected in rule.items():
                if test in ("Variable", "Next"):
                    continue
                if not _compare(test, value, expected):
                    break
            else:
                return rule["Next"]
        return state["Default"]

    def _with_retries(self, state: Mapping[str, Any], attempt: Callable[[], Any]) -> Any:
        tries: dict[int, int] = {}
        while True:
            try:
                return attempt()
            except _TaskError as failure:
                for i, rule in enumerate(state.get("Retry", [])):
                    if _matches(rule["ErrorEquals"], failure.error):
                        if tries.get(i, 0) >= rule.get("MaxAttempts", 3):
                            raise
                        tries[i] = tries.get(i, 0) + 1
                        wait = rule.get("IntervalSeconds", 1) * rule.get("BackoffRate", 2.0) ** (
                            tries[i] - 1
                        )
                        time.sleep(wait * self.retry_interval_scale)
                        break
                else:
                    raise

    @staticmethod
    def _catcher(state: Mapping[str, Any], error: str) -> Mapping[str, Any] | None:
        return next((c for c in state.get("Catch", []) if _matches(c["ErrorEquals"], error)), None)

    def _parameters(self, template: Any, data: Any, context: dict) -> Any:
        """Parameters / ItemSelector / Payload: keys ending in ``.$`` are paths or
        intrinsic functions evaluated against the state's input (``$$``: the context)."""
        if template is None:
            return data
        if isinstance(template, list):
            return [self._parameters(v, data, context) for v in template]
        if not isinstance(template, dict):
            return template
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = _evaluate(value, data, context)
            else:
                out[key] = self._parameters(value, data, context)
        return out


def _evaluate(expression: str, data: Any, context: dict) -> Any:
    add = _MATH_ADD.match(expression)
    if add:
        return int(_get(data, add.group(1), context)) + int(add.group(2))
    if expression.startswith("States."):
        raise NotImplementedError(f"intrinsic {expression} not played locally")
    return _get(data, expression, context)


def _get(data: Any, path: str | None, context: dict) -> Any:
    if path is None:
        return {}
    if path.startswith("$$"):
        data, path = context, "$" + path[2:]
    if path == "$":
        return data
    if not path.startswith("$."):
        raise NotImplementedError(f"path {path} not played locally")
    for part in path[2:].split("."):
        if not isinstance(data, dict) or part not in data:
            raise _TaskError("States.Runtime", f"path {path} not found in the state's input")
        data = data[part]
    return data


def _put(data: Any, path: str | None, value: Any) -> Any:
    if path is None:
        return data
    if path == "$":
        return value
    if not path.startswith("$."):
        raise NotImplementedError(f"result path {path} not played locally")
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = out
    parts = path[2:].split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _matches(names: list[str], error: str) -> bool:
    return (
        "States.ALL" in names
        or error in names
        or ("States.TaskFailed" in names and not error.startswith("States."))
    )


def _compare(test: str, value: Any, expected: Any) -> bool:
    comparisons = {
        "NumericEquals": lambda: value == expected,
        "NumericLessThan": lambda: value < expected,
        "NumericGreaterThan": lambda: value > expected,
        "NumericLessThanEquals": lambda: value <= expected,
        "NumericGreaterThanEquals": lambda: value >= expected,
        "StringEquals": lambda: value == expected,
        "BooleanEquals": lambda: value is expected,
    }
    if test not in comparisons:
        raise NotImplementedError(f"choice test {test} not played locally")
    return bool(comparisons[test]())
