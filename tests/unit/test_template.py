"""Static checks of template.yaml (the SAM application) and of the layer build files.

The checks are plain functions returning a list of problems, so that the tests below
can also prove each one fails on a deliberately broken copy of the template.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from local.template import api_routes as template_routes
from local.template import function_properties, function_variables, load_template
from opencrs.config import DEFAULT_BUNDLE_DELTAS, DEFAULT_BUNDLE_SHARDS
from scripts import transform_template

ROOT = Path(__file__).resolve().parents[2]

FUNCTIONS = {
    "SimilarFunction": "functions/similar/",
    "TargetsFunction": "functions/targets/",
    "IndexFunction": "functions/index/",
    "CompactFunction": "functions/compact/",
    "ReindexFunction": "functions/reindex/",
    "PartitionSearchFunction0": "functions/partition/",
}
# One partition search function per default PartitionSlots entry (Fn::ForEach).
SLOTS = ("0", "1", "2", "3")
PARTITION_FUNCTIONS = tuple(f"PartitionSearchFunction{slot}" for slot in SLOTS)
# The functions that run the similarity engine, so may fan a library out over partitions.
ENGINE_FUNCTIONS = ("SimilarFunction", "TargetsFunction", "IndexFunction")
LAYERS = {"DepsLayer": "layers/deps/", "OpenCRSLayer": "layers/opencrs/"}
# (method, path) -> function. GET /ping and POST /targets are required now; the rest of
# EasyAR's target API is wired to TargetsFunction as well.
ROUTES = {
    ("POST", "/similar"): "SimilarFunction",
    ("POST", "/search"): "SimilarFunction",
    ("POST", "/v2/search"): "SimilarFunction",
    ("GET", "/targets/count"): "TargetsFunction",
    ("GET", "/targets"): "TargetsFunction",
    ("DELETE", "/targets"): "TargetsFunction",
    ("POST", "/token/v2"): "TargetsFunction",
    ("POST", "/targets"): "TargetsFunction",
    ("GET", "/targets/infos"): "TargetsFunction",
    ("GET", "/target/{id}"): "TargetsFunction",
    ("PUT", "/target/{id}"): "TargetsFunction",
    ("DELETE", "/target/{id}"): "TargetsFunction",
    ("POST", "/grade/detection"): "TargetsFunction",
    ("POST", "/grade/tracking"): "TargetsFunction",
    ("POST", "/grade/detail"): "TargetsFunction",
    ("GET", "/ping"): "TargetsFunction",
    ("GET", "/console"): "TargetsFunction",
    ("GET", "/console/{name}"): "TargetsFunction",
}
READ_ONLY_POLICIES = {"S3ReadPolicy", "DynamoDBReadPolicy", "AWSSecretsManagerGetSecretValuePolicy"}
ENV_VARS = {
    "OPENCRS_BUCKET",
    "OPENCRS_TABLE",
    "OPENCRS_UPLOAD_PREFIX",
    "OPENCRS_BUNDLE_SHARDS",
    "OPENCRS_BUNDLE_DELTAS",
    "OPENCRS_CREDENTIALS_SECRET_ARN",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_TRACE_DISABLED",
    "OPENBLAS_NUM_THREADS",
}


# --------------------------------------------------------------------------- loading


def api_routes(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(METHOD, path) -> function logical id, as the local runner routes them."""
    return {(r.method, r.path): r.function_id for r in template_routes(doc)}


def referenced_ids(node: Any) -> set[str]:
    """Logical ids referenced by Ref / GetAtt / Sub anywhere under ``node``."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= referenced_ids(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else value
                for name in re.findall(r"\$\{([^!}][^}]*)\}", text):
                    name = name.split(".")[0]
                    if name not in variables:
                        found.add(name)
                found |= referenced_ids(variables)
            else:
                found |= referenced_ids(value)
    return {name for name in found if not name.startswith("AWS::")}


def s3_event_buckets(props: dict[str, Any]) -> set[str]:
    return {
        event["Properties"]["Bucket"]["Ref"]
        for event in props.get("Events", {}).values()
        if event.get("Type") == "S3" and isinstance(event["Properties"].get("Bucket"), dict)
    }


# --------------------------------------------------------------------------- checks


def check_no_bucket_ref_from_functions(doc: dict[str, Any]) -> list[str]:
    """No function may Ref/GetAtt a bucket in its policies, environment or non-S3 events.

    The bucket's notification configuration depends on the function it triggers, so such
    a reference closes a dependency cycle that `sam validate --lint` does not report.
    """
    buckets = {
        name for name, res in doc["Resources"].items() if res.get("Type") == "AWS::S3::Bucket"
    }
    problems = []
    for name, props in function_properties(doc).items():
        places = {
            "Policies": props.get("Policies"),
            "Environment": props.get("Environment"),
            "Events (other than the S3 event's Bucket)": [
                event
                if event.get("Type") != "S3"
                else {k: v for k, v in event["Properties"].items() if k != "Bucket"}
                for event in props.get("Events", {}).values()
            ],
        }
        for place, node in places.items():
            for ref in sorted(referenced_ids(node) & buckets):
                problems.append(f"{name}.{place} references bucket {ref}")
    return problems


def check_bucket_name_consistent(doc: dict[str, Any]) -> list[str]:
    """The bucket's name, OPENCRS_BUCKET and every S3 policy's BucketName are one expression."""
    expected = doc["Resources"]["GalleryBucket"]["Properties"].get("BucketName")
    if expected is None:
        return ["GalleryBucket has no BucketName, so functions cannot name it without a Ref"]
    problems = []
    for name, props in function_properties(doc).items():
        env = props.get("Environment", {}).get("Variables", {})
        if env.get("OPENCRS_BUCKET") != expected:
            problems.append(f"{name}: OPENCRS_BUCKET differs from GalleryBucket's BucketName")
        for policy in props.get("Policies", []):
            if isinstance(policy, dict):
                for kind, args in policy.items():
                    if kind.startswith("S3") and args.get("BucketName") != expected:
                        problems.append(f"{name}: {kind}.BucketName differs from the bucket's")
    return problems


def find_cycle(resources: dict[str, Any]) -> list[str] | None:
    """A dependency cycle among CloudFormation resources (Ref/GetAtt/Sub/DependsOn), if any."""
    graph: dict[str, set[str]] = {}
    for name, resource in resources.items():
        deps = referenced_ids({k: v for k, v in resource.items() if k != "DependsOn"})
        depends_on = resource.get("DependsOn", [])
        deps |= {depends_on} if isinstance(depends_on, str) else set(depends_on)
        graph[name] = {dep for dep in deps if dep in resources}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def sam_transform(doc: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CloudFormation template SAM would deploy, as `make template-lint` lints it."""
    return transform_template.sam_transform(doc, parameters)


def role_actions(transformed: dict[str, Any], function: str) -> set[str]:
    """IAM actions the function's role is granted inline (policy templates expanded)."""
    role = transformed["Resources"][f"{function}Role"]["Properties"]
    actions: set[str] = set()
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement.get("Effect", "Allow") == "Allow":
                action = statement["Action"]
                actions |= {action} if isinstance(action, str) else set(action)
    return actions


WRITE_ACTION = re.compile(
    r"^(s3:(Put|Delete|Restore|Create|Abort)|dynamodb:(Put|Update|Delete|BatchWrite|Create)"
    r"|secretsmanager:(Put|Update|Delete|Create|Rotate))",
    re.I,
)


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return load_template()


def test_template_is_a_sam_template(doc):
    assert doc["Transform"] == "AWS::Serverless-2016-10-31"
    assert set(FUNCTIONS) <= set(doc["Resources"])


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_code_and_handler_exist(doc, name):
    props = function_properties(doc)[name]
    assert props["CodeUri"] == FUNCTIONS[name]
    module, _, func = props["Handler"].rpartition(".")
    handler_file = ROOT / props["CodeUri"] / (module.replace(".", "/") + ".py")
    assert handler_file.is_file(), f"{name}: {handler_file.relative_to(ROOT)} is missing"
    assert re.search(rf"^def {func}\(|^{func} = ", handler_file.read_text(), re.M), (
        f"{name}: {handler_file.relative_to(ROOT)} defines no {func}"
    )
    # A requirements.txt would make `sam build` demand a local python3.12; deps go in layers.
    assert not (ROOT / props["CodeUri"] / "requirements.txt").exists()


def test_api_routes(doc):
    routes = api_routes(doc)
    for route, function in ROUTES.items():
        assert routes.get(route) == function, f"{route} should be served by {function}"
    for props in function_properties(doc).values():
        for event in props.get("Events", {}).values():
            if event["Type"] == "Api":
                assert event["Properties"]["RestApiId"] == {"Ref": "Api"}


def test_uploads_reach_the_index_function_through_a_queue(doc):
    resources = doc["Resources"]
    props = function_properties(doc)["IndexFunction"]
    (event,) = [e for e in props["Events"].values() if e["Type"] == "SQS"]
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["UploadQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert not [e for e in props["Events"].values() if e["Type"] == "S3"]
    bucket = resources["GalleryBucket"]
    assert bucket["DependsOn"] == "UploadQueuePolicy"
    configs = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert {c["Event"] for c in configs} == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    for config in configs:
        assert config["Queue"] == {"Fn::GetAtt": ["UploadQueue", "Arn"]}
        assert {"Name": "prefix", "Value": "uploads/"} in config["Filter"]["S3Key"]["Rules"]
    redrive = resources["UploadQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["UploadDeadLetterQueue", "Arn"]}
    timeout = props["Timeout"]
    assert resources["UploadQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout
    statement = resources["UploadQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    source = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert "GalleryBucket" not in referenced_ids(source)  # named, not Ref'd: no cycle


def test_writes_ask_the_compaction_function_through_its_queue(doc):
    resources = doc["Resources"]
    functions = function_properties(doc)
    props = functions["CompactFunction"]
    (event,) = props["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["CompactionQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = resources["CompactionQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * props["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["CompactionDeadLetterQueue", "Arn"]
    }
    send = {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["CompactionQueue", "QueueName"]}}}
    for name, function in functions.items():
        variables = function.get("Environment", {}).get("Variables", {})
        writes = name in ("TargetsFunction", "IndexFunction")
        assert (variables.get("OPENCRS_COMPACTION_QUEUE") == {"Ref": "CompactionQueue"}) == writes
        assert (send in function.get("Policies", [])) == writes, name
    assert doc["Outputs"]["CompactionDeadLetterQueueUrl"]["Value"] == {
        "Ref": "CompactionDeadLetterQueue"
    }


def test_the_reindex_state_machine_fans_builds_out_and_may_only_run_its_own(doc):
    machine = doc["Resources"]["ReindexStateMachine"]["Properties"]
    assert machine["Name"] == {"Fn::Sub": "${AWS::StackName}-reindex"}
    text = json.dumps(machine["Definition"])
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    assert placeholders == set(machine["DefinitionSubstitutions"]) == {"ReindexFunctionArn"}
    states = machine["Definition"]["States"]
    build = states["Build"]
    assert build["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert isinstance(build["MaxConcurrency"], int)  # a substituted value would be a string
    assert [c["ErrorEquals"] for c in states["Switch"]["Catch"]] == [
        ["LibraryChanged"],
        ["States.ALL"],
    ]
    invoke, own = machine["Policies"]
    assert invoke == {"LambdaInvokePolicy": {"FunctionName": {"Ref": "ReindexFunction"}}}
    resources = [statement["Resource"]["Fn::Sub"] for statement in own["Statement"]]
    assert all("${AWS::StackName}-reindex" in r for r in resources)
    assert doc["Outputs"]["ReindexStateMachineArn"]["Value"] == {"Ref": "ReindexStateMachine"}


def test_no_function_references_the_bucket(doc):
    assert check_no_bucket_ref_from_functions(doc) == []


def test_bucket_name_is_one_string_everywhere(doc):
    assert check_bucket_name_consistent(doc) == []


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_runtime_architecture_and_layers(doc, name):
    props = function_properties(doc)[name]
    match = re.fullmatch(r"python3\.(\d+)", props["Runtime"])
    assert match and int(match.group(1)) >= 12, props["Runtime"]
    assert props["Architectures"] == [{"Ref": "Architecture"}]
    assert {"Ref": "DepsLayer"} in props["Layers"]
    assert {"Ref": "OpenCRSLayer"} in props["Layers"]
    assert set(props["Environment"]["Variables"]) >= ENV_VARS
    assert props["Environment"]["Variables"]["OPENCRS_UPLOAD_PREFIX"] == "uploads/"


def test_the_index_function_runs_opencv_on_one_thread(doc):
    """Bulk imports pay for the CPU they take, and OpenCV's spinning workers only add to it;
    the functions a user waits on keep OpenCV's default."""
    assert function_variables("IndexFunction", doc)["OPENCV_FOR_THREADS_NUM"] == "1"
    assert "OPENCV_FOR_THREADS_NUM" not in function_variables("SimilarFunction", doc)


def test_function_variables_are_the_globals_overridden_by_the_functions_own():
    doc = {
        "Globals": {"Function": {"Environment": {"Variables": {"A": "1", "B": "2"}}}},
        "Resources": {
            "F": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"Environment": {"Variables": {"B": "3", "C": {"Ref": "P"}}}},
            },
            "G": {"Type": "AWS::Serverless::Function", "Properties": {}},
        },
    }
    assert function_variables("F", doc) == {"A": "1", "B": "3"}
    assert function_variables("G", doc) == {"A": "1", "B": "2"}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_build_with_their_makefile(doc, name):
    layer = doc["Resources"][name]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["ContentUri"] == LAYERS[name]
    assert layer["Properties"]["CompatibleRuntimes"] == [
        function_properties(doc)["SimilarFunction"]["Runtime"]
    ]
    makefile = (ROOT / LAYERS[name] / "Makefile").read_text()
    assert re.search(rf"^build-{name}:", makefile, re.M), f"Makefile lacks build-{name}"
    assert "ARTIFACTS_DIR" in makefile


def test_deps_layer_requirements():
    text = (ROOT / "layers/deps/requirements.txt").read_text()
    names = {
        re.split(r"[<>=!~;\[ ]", line.strip())[0].lower()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    assert {"numpy", "opencv-python-headless", "aws-lambda-powertools"} <= names
    assert not names & {"boto3", "botocore", "s3transfer"}, "the Lambda runtime ships boto3"
    assert "opencv-python-headless==5.0.0.93" in text
    makefile = (ROOT / "layers/deps/Makefile").read_text()
    for flag in ("--only-binary=:all:", "--no-compile", "--python-version", "--platform"):
        assert flag in makefile
    # Powertools Tracer needs the X-Ray SDK; installed --no-deps so botocore stays out.
    nodeps = (ROOT / "layers/deps/requirements-nodeps.txt").read_text()
    assert re.search(r"^aws-xray-sdk==", nodeps, re.M)
    assert "wrapt" in names and "--no-deps" in makefile
    assert '-r "$(HERE)requirements-nodeps.txt"' in makefile


def test_least_privilege(doc):
    functions = function_properties(doc)
    policy_kinds = {
        name: {next(iter(p)) if isinstance(p, dict) else p for p in props.get("Policies", [])}
        for name, props in functions.items()
    }
    assert policy_kinds["SimilarFunction"] == READ_ONLY_POLICIES | {"LambdaInvokePolicy"}
    for name in ("TargetsFunction", "IndexFunction"):
        assert policy_kinds[name] == {
            "S3CrudPolicy",
            "DynamoDBCrudPolicy",
            "AWSSecretsManagerGetSecretValuePolicy",
            "LambdaInvokePolicy",
            "SQSSendMessagePolicy",
        }
    assert policy_kinds["CompactFunction"] == {"S3CrudPolicy", "DynamoDBCrudPolicy"}
    assert policy_kinds["ReindexFunction"] == {"S3CrudPolicy", "DynamoDBCrudPolicy"}
    for name in PARTITION_FUNCTIONS:
        assert policy_kinds[name] == {"S3ReadPolicy"}


def test_engine_functions_invoke_every_partition_slot_by_name(doc):
    functions = function_properties(doc)
    pattern = "${AWS::StackName}-partition-{slot}:live"
    for name in ENGINE_FUNCTIONS:
        env = functions[name]["Environment"]["Variables"]
        assert env["OPENCRS_PARTITION_SHARDS"] == {"Ref": "PartitionShards"}
        assert env["OPENCRS_PARTITION_FUNCTION"] == {"Fn::Sub": pattern}
        assert env["OPENCRS_PARTITION_SLOTS"] == {"Fn::Join": [",", {"Ref": "PartitionSlots"}]}
        assert env["OPENCRS_PARTITION_TIMEOUT"] == {"Ref": "PartitionTimeout"}
        invoke = [p for p in functions[name]["Policies"] if "LambdaInvokePolicy" in p]
        every_slot = {"FunctionName": {"Fn::Sub": "${AWS::StackName}-partition-"}}
        assert invoke == [{"LambdaInvokePolicy": every_slot}]
    for slot, name in zip(SLOTS, PARTITION_FUNCTIONS, strict=True):
        partition = functions[name]
        # The name the coordinator invokes is the name the slot is given.
        assert {"Fn::Sub": pattern.replace("{slot}", slot).removesuffix(":live")} == partition[
            "FunctionName"
        ]
        assert partition["AutoPublishAlias"] == "live"
        assert partition["Timeout"] == {"Ref": "PartitionTimeout"}
        assert "OPENCRS_PARTITION_FUNCTION" not in partition["Environment"]["Variables"]
        group = doc["Resources"][f"{name}LogGroup"]["Properties"]["LogGroupName"]
        assert group == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}-partition-{slot}"}
    assert doc["Parameters"]["PartitionTimeout"]["MaxValue"] < 20  # the fan-out budget
    assert doc["Parameters"]["PartitionShards"]["Default"] == 0  # no fan-out unless asked


def test_partition_slots_are_one_loop_expanded_with_the_parameter():
    raw = load_template(expand=False)
    assert raw["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]
    assert "Fn::ForEach::PartitionSearchFunctions" in raw["Resources"]
    two = transform_template.expand_language_extensions(raw, {"PartitionSlots": "a,b"})
    assert {"PartitionSearchFunctiona", "PartitionSearchFunctionb"} <= set(two["Resources"])
    assert "PartitionSearchFunction0" not in two["Resources"]
    name = two["Resources"]["PartitionSearchFunctionb"]["Properties"]["FunctionName"]
    assert name == {"Fn::Sub": "${AWS::StackName}-partition-b"}


@pytest.mark.parametrize(
    "collection", [{"Ref": "Stage"}, {"Fn::Split": [",", "a,b"]}], ids=["not a list", "intrinsic"]
)
def test_unsupported_loops_are_refused_not_expanded_wrongly(collection):
    doc = {
        "Parameters": {"Stage": {"Type": "String", "Default": "a"}},
        "Resources": {"Fn::ForEach::X": ["N", collection, {"R${N}": {"Type": "T"}}]},
    }
    with pytest.raises(ValueError, match="Fn::ForEach"):
        transform_template.expand_language_extensions(doc)


def test_partition_functions_are_read_only_and_their_aliases_can_be_kept_warm(doc):
    transformed = sam_transform(doc)
    resources = transformed["Resources"]
    for name in PARTITION_FUNCTIONS:
        actions = role_actions(transformed, name)
        assert "s3:GetObject" in actions
        assert not {a for a in actions if WRITE_ACTION.match(a) or a.endswith("*")}
        assert not {a for a in actions if a.startswith(("dynamodb:", "secretsmanager:", "lambda:"))}
    for name in ENGINE_FUNCTIONS:
        assert "lambda:InvokeFunction" in role_actions(transformed, name)
    # Provisioned concurrency lives on each slot's published alias, decided at deploy time.
    aliases = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Alias"]
    assert len(aliases) == len(SLOTS)
    for alias in aliases:
        assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {
            "Fn::If": [
                "PartitionInstancesProvisioned",
                {"ProvisionedConcurrentExecutions": {"Ref": "PartitionProvisionedConcurrency"}},
                {"Ref": "AWS::NoValue"},
            ]
        }
    assert doc["Conditions"]["PartitionInstancesProvisioned"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PartitionProvisionedConcurrency"}, 0]}]
    }


def test_storage_and_secret(doc):
    resources = doc["Resources"]
    bucket = resources["GalleryBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    table = resources["TargetsTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    secret = resources["CredentialsSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert "SecretString" not in secret["Properties"], "no secret value in the template"
    assert secret["Properties"]["GenerateSecretString"]["GenerateStringKey"] == "appSecret"


def test_app_key_is_a_parameter_and_the_secret_is_not(doc):
    assert doc["Parameters"]["AppKey"]["Default"] == ""
    assert not any("secret" in name.lower() for name in doc["Parameters"])
    template = doc["Resources"]["CredentialsSecret"]["Properties"]["GenerateSecretString"][
        "SecretStringTemplate"
    ]
    condition, given, default = template["Fn::Sub"][1]["Key"]["Fn::If"]
    assert condition == "AppKeyGiven" and given == {"Ref": "AppKey"}
    assert "AWS::StackId" in str(default)
    for props in function_properties(doc).values():
        variables = props.get("Environment", {}).get("Variables", {})
        assert not {"OPENCRS_APP_SECRET", "OPENCRS_APP_KEY"} & set(variables)


def test_parameters_and_outputs(doc):
    assert {"Stage", "LogLevel", "QueryMemorySize", "Architecture", "Tracing"} <= set(
        doc["Parameters"]
    )
    assert doc["Parameters"]["Architecture"]["Default"] == "arm64"
    # The deployed default is the one the library (and the local runner) uses.
    assert doc["Parameters"]["BundleShards"]["Default"] == DEFAULT_BUNDLE_SHARDS
    assert doc["Parameters"]["BundleDeltas"]["Default"] == DEFAULT_BUNDLE_DELTAS
    assert doc["Parameters"]["Tracing"]["Default"] == "Disabled"
    assert {"ApiUrl", "GalleryBucketName", "TargetsTableName", "CredentialsSecretArn"} <= set(
        doc["Outputs"]
    )
    assert doc["Outputs"]["ApiUrl"]["Value"] == {
        "Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/${Stage}"
    }
    # Only multipart bodies (/v2/search) arrive base64-encoded; JSON stays text.
    assert doc["Resources"]["Api"]["Properties"]["BinaryMediaTypes"] == ["multipart~1form-data"]


def test_deployed_api_passes_multipart_bodies_as_binary(doc):
    transformed = sam_transform(doc)
    (rest_api,) = [
        r for r in transformed["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"
    ]
    # SAM keeps its "~1" escape in the property and writes the real type into the
    # OpenAPI body API Gateway imports.
    body = rest_api["Properties"]["Body"]
    assert body["x-amazon-apigateway-binary-media-types"] == ["multipart/form-data"]


def test_transformed_template_has_no_cycle(doc):
    transformed = sam_transform(doc)
    assert "AWS::Serverless::Function" not in {r["Type"] for r in transformed["Resources"].values()}
    assert find_cycle(transformed["Resources"]) is None


def test_similar_function_cannot_write(doc):
    transformed = sam_transform(doc)
    similar = role_actions(transformed, "SimilarFunction")
    assert {"s3:GetObject", "dynamodb:GetItem", "secretsmanager:GetSecretValue"} <= similar
    assert not {a for a in similar if WRITE_ACTION.match(a) or a.endswith("*")}
    for name in ("TargetsFunction", "IndexFunction"):
        actions = role_actions(transformed, name)
        assert {"s3:PutObject", "dynamodb:PutItem"} <= actions
        assert not {a for a in actions if a.startswith("secretsmanager:") and WRITE_ACTION.match(a)}
        assert "sqs:SendMessage*" in actions  # SendMessage and SendMessageBatch
    compact = role_actions(transformed, "CompactFunction")
    assert {"s3:PutObject", "s3:DeleteObject", "dynamodb:PutItem"} <= compact
    assert not {a for a in compact if a.startswith(("secretsmanager:", "lambda:"))}


@pytest.mark.parametrize("tracing", ["Disabled", "Active"])
def test_tracing_parameter_drives_config_and_permission(doc, tracing):
    transformed = sam_transform(doc, {"Tracing": tracing})
    resources = transformed["Resources"]
    for name in FUNCTIONS:
        mode = resources[name]["Properties"].get("TracingConfig")
        xray = [
            arn
            for arn in resources[f"{name}Role"]["Properties"]["ManagedPolicyArns"]
            if "Xray" in str(arn) or "XRay" in str(arn)
        ]
        if tracing == "Active":
            assert mode == {"Mode": {"Ref": "Tracing"}} and xray, name
        else:
            assert mode is None and not xray, f"{name}: no X-Ray config or permission"
        env = resources[name]["Properties"]["Environment"]["Variables"]
        assert env["POWERTOOLS_TRACE_DISABLED"] == {"Fn::If": ["TracingActive", "false", "true"]}
    (stage,) = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage"]
    assert stage["Properties"]["TracingEnabled"] == {"Fn::If": ["TracingActive", True, False]}


def test_transform_script_writes_the_deployed_template(tmp_path):
    out = tmp_path / "transformed.json"
    script = ROOT / "scripts" / "transform_template.py"
    result = subprocess.run(
        [sys.executable, str(script), str(ROOT / "template.yaml"), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    transformed = json.loads(out.read_text())
    assert "Transform" not in transformed
    assert find_cycle(transformed["Resources"]) is None
    assert {"SimilarFunction", "SimilarFunctionRole", "GalleryBucket"} <= set(
        transformed["Resources"]
    )


def test_transform_script_reports_an_invalid_template(tmp_path):
    broken = tmp_path / "template.yaml"
    broken.write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  F:\n"
        "    Type: AWS::Serverless::Function\n    Properties:\n      Events: 3\n"
    )
    script = ROOT / "scripts" / "transform_template.py"
    result = subprocess.run(
        [sys.executable, str(script), str(broken), str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and "error:" in result.stderr
    assert not (tmp_path / "out.json").exists()


def run_check_size(tmp_path: Path, sizes_mb: dict[str, float]) -> subprocess.CompletedProcess:
    """check_size.py over sparse files: {"Layer/python/x.so": MB, "fn/app.py": MB}."""
    for relative, size in sizes_mb.items():
        path = tmp_path / "artifacts" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            handle.truncate(int(size * 1024 * 1024))
    return subprocess.run(
        [sys.executable, str(ROOT / "layers/check_size.py"), str(tmp_path / "artifacts")],
        capture_output=True,
        text=True,
        check=False,
    )


def test_check_size_passes_under_and_fails_over_250_mb(tmp_path):
    ok = run_check_size(tmp_path / "ok", {"Deps/python/big.so": 240, "similar/app.py": 1})
    assert ok.returncode == 0, ok.stderr
    assert "241.0 MB" in ok.stdout and "OK" in ok.stdout
    over = run_check_size(tmp_path / "over", {"Deps/python/big.so": 240, "similar/app.py": 11})
    assert over.returncode == 1
    assert "OVER LIMIT" in over.stdout and "250 MB" in over.stderr


def test_check_size_counts_runtime_bytecode_and_flags_foreign(tmp_path):
    layer = "Deps/python/pkg/__pycache__/"
    result = run_check_size(
        tmp_path, {layer + "m.cpython-312.pyc": 1, layer + "m.cpython-311.pyc": 1, "f/app.py": 0}
    )
    assert result.returncode == 0
    assert "2.0 MB" in result.stdout  # both counted: they are shipped
    assert "1 .pyc/.pyo files not built for CPython 3.12" in result.stderr


# --------------------------------------------------------------------------- the checks bite


def test_checks_catch_a_bucket_ref_in_the_index_function(doc):
    broken = copy.deepcopy(doc)
    props = broken["Resources"]["IndexFunction"]["Properties"]
    # A direct S3 trigger makes the bucket depend on the function; a Ref back closes it.
    props["Events"]["Direct"] = {
        "Type": "S3",
        "Properties": {"Bucket": {"Ref": "GalleryBucket"}, "Events": "s3:ObjectCreated:*"},
    }
    del broken["Resources"]["GalleryBucket"]["Properties"]["NotificationConfiguration"]
    props["Environment"] = {"Variables": {"OPENCRS_BUCKET": {"Ref": "GalleryBucket"}}}
    props["Policies"][0] = {"S3CrudPolicy": {"BucketName": {"Ref": "GalleryBucket"}}}
    problems = check_no_bucket_ref_from_functions(broken)
    assert any("IndexFunction.Environment" in p for p in problems)
    assert any("IndexFunction.Policies" in p for p in problems)
    assert check_bucket_name_consistent(broken)
    cycle = find_cycle(sam_transform(broken)["Resources"])
    assert cycle is not None and "GalleryBucket" in cycle


def test_checks_catch_missing_routes_and_old_runtime(doc):
    broken = copy.deepcopy(doc)
    del broken["Resources"]["TargetsFunction"]["Properties"]["Events"]["Ping"]
    broken["Globals"]["Function"]["Runtime"] = "python3.9"
    assert ("GET", "/ping") not in api_routes(broken)
    assert function_properties(broken)["IndexFunction"]["Runtime"] == "python3.9"
    with pytest.raises(AssertionError):
        test_api_routes(broken)
    with pytest.raises(AssertionError):
        test_runtime_architecture_and_layers(broken, "IndexFunction")


def test_find_cycle_sees_depends_on_and_sub():
    resources = {
        "A": {"Properties": {"X": {"Fn::Sub": "${B.Arn}"}}},
        "B": {"DependsOn": "C"},
        "C": {"Properties": {"Y": {"Ref": "A"}}},
    }
    assert find_cycle(resources) == ["A", "B", "C", "A"]
    del resources["C"]["Properties"]
    assert find_cycle(resources) is None
