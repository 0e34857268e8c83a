"""GET /console through the targets function, as API Gateway delivers it: the page and
its two files with a policy that allows this origin only; anything else under /console
is EasyAR's 404; /console/ is sent to /console, which its relative links need."""

from __future__ import annotations

import copy

import pytest

from local.runtime import FakeLambdaContext, load_event

pytestmark = pytest.mark.integration


def headers_of(answer: dict) -> dict[str, str]:
    """The REST resolver answers every header as a list (multiValueHeaders)."""
    return {name: values[-1] for name, values in answer["multiValueHeaders"].items()}


def get(stack, path: str) -> dict:
    event = copy.deepcopy(load_event("ping.json"))
    event["path"] = event["requestContext"]["path"] = path
    event["resource"] = "/console" if path == "/console" else "/console/{name}"
    event["pathParameters"] = None if path == "/console" else {"name": path.split("/")[-1]}
    return stack.targets_handler(event, FakeLambdaContext("TargetsFunction"))


@pytest.mark.parametrize(
    ("path", "kind", "marker"),
    [
        ("/console", "text/html", 'src="console/console.js"'),
        ("/console/console.js", "text/javascript", "textContent"),
        ("/console/console.css", "text/css", "#drop"),
    ],
)
def test_the_console_is_served_with_a_same_origin_policy(stack, path, kind, marker) -> None:
    answer = get(stack, path)
    headers = headers_of(answer)
    assert answer["statusCode"] == 200 and marker in answer["body"]
    assert headers["Content-Type"].startswith(kind)
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_loads_nothing_from_elsewhere(stack) -> None:
    page = get(stack, "/console")["body"] + get(stack, "/console/console.js")["body"]
    assert "http://" not in page and "https://" not in page and "innerHTML" not in page


def test_other_paths_are_not_found_and_a_trailing_slash_is_redirected(stack) -> None:
    for path in ("/console/index.html", "/console/secrets.json", "/console/..%2Fapp.py"):
        answer = get(stack, path)
        assert answer["statusCode"] == 404 and '"statusCode":404' in answer["body"]
    answer = get(stack, "/console/")
    assert answer["statusCode"] == 302 and headers_of(answer)["Location"] == "../console"
