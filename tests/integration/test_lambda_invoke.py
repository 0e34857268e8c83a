"""The Lambda Invoke stand-in answers boto3's lambda client as Lambda's Invoke API does."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from local.lambda_invoke import InvokeStandIn, LambdaFunction, function_name_of

FIXTURES = "tests.integration.lambda_fixtures.handlers"


def _function(name: str, **kwargs: object) -> LambdaFunction:
    return LambdaFunction(name=name, handler=f"{FIXTURES}:{name}", **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stand_in() -> Iterator[InvokeStandIn]:
    functions = [
        _function("echo", env={"FIXTURE_SETTING": "set"}, memory_mb=512, timeout_s=5),
        _function("fail"),
        _function("sleep", timeout_s=1.0, concurrency=2),
        _function("crash"),
        _function("oversize"),
        LambdaFunction(name="broken", handler="tests.integration.lambda_fixtures.broken:handler"),
    ]
    with InvokeStandIn(functions) as running:
        yield running


def lambda_client_for(stand_in: InvokeStandIn):
    """boto3's own lambda client pointed at the stand-in, without retries to hide a failure."""
    return boto3.client(
        "lambda",
        endpoint_url=stand_in.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=30),
    )


@pytest.fixture(scope="module")
def client(stand_in: InvokeStandIn):
    return lambda_client_for(stand_in)


def _invoke(client, name: str, payload: object = None, **kwargs: object) -> tuple[dict, object]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload or {}), **kwargs)
    return response, json.loads(response["Payload"].read() or b"null")


def test_request_response_runs_the_handler_with_its_environment_and_context(client) -> None:
    response, body = _invoke(client, "echo", {"n": 1})
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    assert body["event"] == {"n": 1}
    assert body["env"] == "set"
    assert body["memoryMb"] == 512
    assert 0 < body["remainingMs"] <= 5000
    assert body["requestId"] == response["ResponseMetadata"]["RequestId"]


def test_a_worker_stays_warm_between_invocations(client) -> None:
    first = _invoke(client, "echo")[1]
    second = _invoke(client, "echo")[1]
    assert first["pid"] == second["pid"]
    assert first["requestId"] != second["requestId"]


def test_names_arns_and_qualifiers_reach_the_same_function(client) -> None:
    arn = "arn:aws:lambda:us-east-1:000000000000:function:echo"
    for name in (arn, f"{arn}:$LATEST", "000000000000:function:echo", "echo:$LATEST"):
        assert _invoke(client, name, {"via": name})[1]["event"] == {"via": name}
    assert function_name_of("arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Aecho%3Alive") == (
        "echo",
        "live",
    )


def test_an_unknown_function_or_version_is_resource_not_found(client) -> None:
    for kwargs in ({"FunctionName": "missing"}, {"FunctionName": "echo", "Qualifier": "7"}):
        with pytest.raises(client.exceptions.ResourceNotFoundException, match="Function not found"):
            client.invoke(Payload=b"{}", **kwargs)


def test_a_handler_exception_is_an_unhandled_function_error(client) -> None:
    response, body = _invoke(client, "fail", {"what": "this"})
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "refused this"
    assert body["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert any("handlers.py" in line for line in body["stackTrace"])


def test_a_timeout_is_reported_and_the_environment_replaced(client) -> None:
    started = time.monotonic()
    response, body = _invoke(client, "sleep", {"seconds": 3})
    assert time.monotonic() - started < 2.5
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "1.00 seconds" in body["errorMessage"]
    assert _invoke(client, "sleep", {"seconds": 0})[1]["slept"] == 0


def test_invocations_run_in_parallel_environments(client) -> None:
    _invoke(client, "sleep", {"seconds": 0})  # warm one environment; the other starts cold
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: _invoke(client, "sleep", {"seconds": 0.6})[1], range(2)))
    assert len({answer["pid"] for answer in answers}) == 2


def test_a_crashed_runtime_is_an_exit_error_and_the_next_call_starts_fresh(client) -> None:
    for _ in range(2):
        response, body = _invoke(client, "crash")
        assert response["FunctionError"] == "Unhandled"
        assert body["errorType"] == "Runtime.ExitError"


def test_a_failed_init_is_an_exit_error_every_time(client) -> None:
    for _ in range(2):
        response, body = _invoke(client, "broken")
        assert response["FunctionError"] == "Unhandled"
        assert body["errorType"] == "Runtime.ExitError"


def test_payload_limits_both_ways(client) -> None:
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName="echo", Payload=json.dumps({"x": "y" * (6 * 1024 * 1024)}))
    response, body = _invoke(client, "oversize")
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Function.ResponseSizeTooLarge"


def test_a_payload_that_is_not_json_is_invalid_request_content(client) -> None:
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="echo", Payload=b"{not json")


def test_event_and_dry_run_invocation_types(client) -> None:
    assert client.invoke(FunctionName="echo", InvocationType="Event")["StatusCode"] == 202
    assert client.invoke(FunctionName="echo", InvocationType="DryRun")["StatusCode"] == 204


def test_log_tail_carries_the_report_line(client) -> None:
    response = client.invoke(FunctionName="echo", Payload=b"{}", LogType="Tail")
    log = base64.b64decode(response["LogResult"]).decode()
    request_id = response["ResponseMetadata"]["RequestId"]
    assert f"REPORT RequestId: {request_id}" in log
    assert "Memory Size: 512 MB" in log


@pytest.mark.integration
def test_a_real_opencrs_handler_answers_through_the_stand_in(stack) -> None:
    """functions/similar in a worker, configured as the template would configure it, finds
    a target the upload pipeline indexed in moto."""
    from bench.demo_photos import photo
    from local.runtime import local_environment

    result = stack.upload("uploads/demo/coffee.jpg", photo("coffee"), {"name": "coffee"})
    assert result["outcomes"][0]["status"] == "indexed"
    env = local_environment(stack.aws.endpoint, stack.aws.bucket, stack.aws.table)
    function = LambdaFunction(name="SimilarFunction", handler="similar", env=env, timeout_s=20)
    with InvokeStandIn([function]) as running:
        lambda_client = lambda_client_for(running)
        event = stack.signed_event("similar.json", image=base64.b64encode(photo("coffee")).decode())
        response, answer = _invoke(lambda_client, "SimilarFunction", event)
    assert "FunctionError" not in response, answer
    body = json.loads(answer["body"])
    assert body["statusCode"] == 0, body
    assert [target["name"] for target in body["result"]["results"]] == ["coffee"]
