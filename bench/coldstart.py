"""Cold-start import time of each Lambda handler, with the layers exactly as built.

A Lambda cold start imports the handler module (``app``) with the layers under
/opt/python. This reproduces that locally: it builds (or reuses) an x86_64 DepsLayer and
the OpenCRSLayer under .aws-sam/coldstart/, plus a stand-in for the runtime's own boto3,
then imports each ``functions/<name>/app.py`` in a fresh CPython 3.12 with
``-X importtime``, N times, and prints the median and the slowest imports.

    python -m bench.coldstart [--runs 7] [--python ~/.pyenv/versions/3.12.1/bin/python]

Like Lambda, the layer has no bytecode and cannot cache any (/opt is read-only), so every
cold start compiles the layer's modules; ``--bytecode`` measures layers shipped with
bytecode compiled by that same CPython 3.12 (what the layer makefiles ship when a
python3.12 is at hand, see PYTHON312 there) instead. Each handler is first imported once
with sockets disabled: module scope must not call AWS (clients are created lazily).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".aws-sam" / "coldstart"
FUNCTIONS = ("similar", "targets", "index")
DEFAULT_PYTHON = Path.home() / ".pyenv" / "versions" / "3.12.1" / "bin" / "python"
# What the python3.12 runtime provides outside the layers (boto3 and its dependencies).
RUNTIME_PACKAGES = ("boto3",)
DUMMY_ENV = {
    "OPENCRS_BUCKET": "opencrs-000000000000-us-east-1-0123456789ab",
    "OPENCRS_TABLE": "opencrs-targets",
    "OPENCRS_UPLOAD_PREFIX": "uploads/",
    "OPENCRS_CREDENTIALS_SECRET_ARN": (
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:opencrs-credentials-AbCdEf"
    ),
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "dummy-secret",
    "AWS_SESSION_TOKEN": "dummy-token",
    "POWERTOOLS_SERVICE_NAME": "opencrs",
    "POWERTOOLS_METRICS_NAMESPACE": "opencrs",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "LAMBDA_TASK_ROOT": "/var/task",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
}
# Run before `import app` in the no-network check: any connection attempt raises.
NO_NETWORK = """
import socket
def _refuse(*args, **kwargs):
    raise RuntimeError(f"network call while importing the handler: {args!r}")
socket.socket.connect = socket.socket.connect_ex = _refuse
socket.create_connection = socket.getaddrinfo = _refuse
import app
print("ok")
"""
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


@dataclass(frozen=True)
class Import:
    module: str
    self_us: int
    cumulative_us: int
    depth: int


def run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def build(python: Path, *, bytecode: bool) -> tuple[Path, ...]:
    """Layer dirs (x86_64, this machine's architecture) + a runtime boto3 dir, reused
    while the requirements and the opencrs sources are unchanged."""
    sources = [REPO / "layers/deps/Makefile", REPO / "layers/opencrs/Makefile"]
    sources += sorted((REPO / "layers/deps").glob("req*.txt"))
    sources += sorted((REPO / "layers/opencrs/opencrs").rglob("*.py"))
    digest = hashlib.sha256(str(bytecode).encode())
    for path in sources:
        digest.update(path.read_bytes())
    stamp = WORK / ("bytecode" if bytecode else "plain") / "stamp"
    root = stamp.parent
    dirs = (root / "runtime", root / "DepsLayer" / "python", root / "OpenCRSLayer" / "python")
    if stamp.is_file() and stamp.read_text() == digest.hexdigest():
        return dirs
    shutil.rmtree(root, ignore_errors=True)
    # The layer makefiles compile with PYTHON312 when given one, exactly as `sam build` does
    # where a python3.12 is on PATH; PYTHON312= (empty) builds them without bytecode.
    python312 = f"PYTHON312={python if bytecode else ''}"
    make = ["make", "--no-print-directory", "-s", "-C"]
    deps = [str(REPO / "layers/deps"), "build-DepsLayer", "ARCH=x86_64", python312]
    run([*make, *deps, f"ARTIFACTS_DIR={root / 'DepsLayer'}", f"PYTHON={sys.executable}"])
    opencrs = [str(REPO / "layers/opencrs"), "build-OpenCRSLayer", python312]
    run([*make, *opencrs, f"ARTIFACTS_DIR={root / 'OpenCRSLayer'}"])
    pip_target = ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.12"]
    pip_target += ["--only-binary=:all:", "--no-compile", "--target", str(dirs[0])]
    run([sys.executable, "-m", "pip", "install", "--quiet", *pip_target, *RUNTIME_PACKAGES])
    # The runtime's own packages (boto3) come compiled.
    run([str(python), "-m", "compileall", "-q", "-j", "0", str(dirs[0])])
    stamp.write_text(digest.hexdigest())
    return dirs


def environment(function: str, paths: tuple[Path, ...]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_"))}
    env.update(DUMMY_ENV)
    # Lambda's order: the function's code, then the layers, then the runtime's packages.
    search = [REPO / "functions" / function, *paths[1:], paths[0]]
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in search)
    return env


def check_no_network(python: Path, function: str, paths: tuple[Path, ...]) -> None:
    result = subprocess.run(
        [str(python), "-c", NO_NETWORK],
        env=environment(function, paths),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or result.stdout.strip() != "ok":
        sys.exit(f"{function}: importing the handler failed\n{result.stderr[-3000:]}")


def measure(python: Path, function: str, paths: tuple[Path, ...]) -> list[Import]:
    """One fresh interpreter importing the handler; the imports it made, in order."""
    result = subprocess.run(
        [str(python), "-X", "importtime", "-c", "import app"],
        env=environment(function, paths),
        capture_output=True,
        text=True,
        check=True,
    )
    imports = []
    for line in result.stderr.splitlines():
        if match := IMPORT_LINE.match(line):
            self_us, cumulative_us, indent, module = match.groups()
            imports.append(Import(module, int(self_us), int(cumulative_us), len(indent) // 2))
    if not any(i.module == "app" for i in imports):
        sys.exit(f"{function}: no importtime line for app\n{result.stderr[-2000:]}")
    return imports


def summarize(runs: list[list[Import]]) -> tuple[float, list[tuple[str, float]], dict[str, float]]:
    """Median handler import ms, its direct imports by median cumulative ms, and the
    median self ms per top-level package (where the time is actually spent)."""
    total = statistics.median(next(i for i in r if i.module == "app").cumulative_us for r in runs)
    app_depth = next(i for i in runs[0] if i.module == "app").depth
    direct: dict[str, list[int]] = {}
    packages: dict[str, list[int]] = {}
    for imports in runs:
        per_package: dict[str, int] = {}
        for item in imports:
            if item.depth == app_depth + 1:
                direct.setdefault(item.module, []).append(item.cumulative_us)
            top = item.module.split(".")[0]
            per_package[top] = per_package.get(top, 0) + item.self_us
        for top, us in per_package.items():
            packages.setdefault(top, []).append(us)
    top_direct = sorted(
        ((m, statistics.median(v) / 1000) for m, v in direct.items()), key=lambda x: -x[1]
    )
    by_package = {p: statistics.median(v) / 1000 for p, v in packages.items()}
    return total / 1000, top_direct[:5], by_package


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per handler")
    parser.add_argument("--python", type=Path, default=DEFAULT_PYTHON, help="a CPython 3.12")
    parser.add_argument(
        "--bytecode", action="store_true", help="layers with bytecode compiled by --python"
    )
    args = parser.parse_args(argv)
    if not args.python.is_file():
        parser.error(f"{args.python}: no such interpreter (Lambda's python3.12 is what counts)")
    version = subprocess.run(
        [str(args.python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    paths = build(args.python, bytecode=args.bytecode)

    print(
        f"\nCPython {version}, {os.cpu_count()} cores {os.uname().machine}, layers x86_64, "
        f"{'with' if args.bytecode else 'no'} layer bytecode, median of {args.runs} runs\n"
    )
    print(f"{'handler':<9} {'import ms':>9}  slowest direct imports (cumulative ms)")
    packages_by_function = {}
    for function in FUNCTIONS:
        check_no_network(args.python, function, paths)
        runs = [measure(args.python, function, paths) for _ in range(args.runs)]
        total, top, packages_by_function[function] = summarize(runs)
        slowest = ", ".join(f"{module} {ms:.0f}" for module, ms in top)
        print(f"{function:<9} {total:9.0f}  {slowest}")

    print("\nself time by top-level package (ms, median)")
    names = sorted(
        {p for v in packages_by_function.values() for p in v},
        key=lambda p: -max(v.get(p, 0) for v in packages_by_function.values()),
    )[:8]
    print(f"{'handler':<9} " + " ".join(f"{n[:13]:>13}" for n in names))
    for function, packages in packages_by_function.items():
        print(f"{function:<9} " + " ".join(f"{packages.get(n, 0):13.0f}" for n in names))
    print("\nmodule scope made no network call (sockets were disabled while importing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
