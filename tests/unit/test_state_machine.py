"""local.state_machine, the local player of the template's state machines: the States
Language it plays behaves as Step Functions documents it (paths, Retry, Catch, Map,
Choice, Fail), and what it does not play is refused rather than skipped."""

from __future__ import annotations

import pytest

from local.state_machine import ExecutionFailed, StateMachine, lambda_invoker

ARN = "arn:aws:lambda:us-east-1:000000000000:function:f"


class Flaky(Exception):
    """Named like the errors a Retry rule lists."""


def machine(states: dict, handler, start: str = "A") -> StateMachine:
    return StateMachine({"StartAt": start, "States": states}, lambda_invoker({ARN: handler}))


def task(**fields) -> dict:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": ARN, "Payload.$": "$"},
        "OutputPath": "$.Payload",
        **fields,
    }


def test_paths_parameters_and_intrinsics() -> None:
    states = {
        "A": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 2)", "k": 1}, "Next": "B"},
        "B": task(ResultPath="$.out", OutputPath="$", End=True),
    }
    result = machine(states, lambda event, _: {"seen": event}).run({"n": 1})
    assert result == {
        "n": 3,
        "k": 1,
        "out": {
            "StatusCode": 200,
            "Payload": {"seen": {"n": 3, "k": 1}},
            "ExecutedVersion": "$LATEST",
        },
    }


def test_retry_then_catch_by_error_name() -> None:
    calls: list[int] = []

    def handler(event, _):
        calls.append(1)
        raise Flaky("try again")

    states = {
        "A": task(
            Retry=[{"ErrorEquals": ["Flaky"], "MaxAttempts": 2}],
            Catch=[{"ErrorEquals": ["Flaky"], "ResultPath": "$.error", "Next": "B"}],
            End=True,
        ),
        "B": {"Type": "Fail", "Error": "Caught", "Cause": "as written"},
    }
    with pytest.raises(ExecutionFailed) as failed:
        machine(states, handler).run({})
    assert len(calls) == 3 and failed.value.error == "Caught"


def test_an_uncaught_error_fails_the_execution_with_its_name_and_message() -> None:
    def handler(event, _):
        raise Flaky("went wrong")

    with pytest.raises(ExecutionFailed) as failed:
        machine({"A": task(End=True)}, handler).run({})
    assert failed.value.error == "Flaky" and "went wrong" in failed.value.cause


def test_map_items_selector_and_choice() -> None:
    states = {
        "A": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {"base.$": "$.base", "item.$": "$$.Map.Item.Value"},
            "MaxConcurrency": 2,
            "ItemProcessor": {"StartAt": "T", "States": {"T": task(End=True)}},
            "ResultPath": "$.sums",
            "Next": "C",
        },
        "C": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.base", "NumericLessThan": 10, "Next": "Small"}],
            "Default": "Big",
        },
        "Small": {"Type": "Pass", "End": True},
        "Big": {"Type": "Fail", "Error": "Big"},
    }
    play = machine(states, lambda event, _: event["base"] + event["item"])
    assert play.run({"base": 1, "items": [1, 2, 3]})["sums"] == [2, 3, 4]
    with pytest.raises(ExecutionFailed, match="Big"):
        machine(states, lambda event, _: 0).run({"base": 10, "items": []})


def test_what_it_does_not_play_is_refused() -> None:
    with pytest.raises(NotImplementedError, match="TimeoutSeconds"):
        machine({"A": task(TimeoutSeconds=5, End=True)}, lambda e, _: e).run({})
    with pytest.raises(NotImplementedError, match=r"States\.Format"):
        states = {
            "A": {"Type": "Pass", "Parameters": {"x.$": "States.Format('{}', $.a)"}, "End": True}
        }
        machine(states, lambda e, _: e).run({"a": 1})
    with pytest.raises(NotImplementedError, match="Wait"):
        machine({"A": {"Type": "Wait", "End": True}}, lambda e, _: e).run({})
