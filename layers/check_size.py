"""Check the unzipped deployment size of every function against Lambda's 250 MB quota.

Lambda limits a function's code plus all its layers, unzipped, to 262,144,000 bytes.
Each of our functions uses every layer, so per function: sum(layers) + its own code.

Usage:
    make -C layers/deps build-DepsLayer ARTIFACTS_DIR=/tmp/x/deps
    make -C layers/opencrs build-OpenCRSLayer ARTIFACTS_DIR=/tmp/x/opencrs
    python layers/check_size.py /tmp/x            # function code taken from functions/
    python layers/check_size.py .aws-sam/build    # or a `sam build` output

A subdirectory of the artifacts directory holding a ``python/`` folder is a layer; any
other subdirectory is a function. Without function subdirectories, the functions are
read from --functions (default: the repository's functions/).
Exit status: 0 within the limit, 1 over it, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

LIMIT_BYTES = 262_144_000  # 250 MiB: Lambda's unzipped function + layers quota
REPO = Path(__file__).resolve().parent.parent
IGNORED = {"__pycache__", ".pytest_cache", ".ruff_cache"}
RUNTIME_BYTECODE = ".cpython-312.pyc"  # what Lambda's python3.12 loads


def tree_size(root: Path, *, shipped_bytecode: bool = False) -> tuple[int, int, int]:
    """Return (bytes, files, foreign bytecode files) under ``root``, symlinks not followed.

    With ``shipped_bytecode`` (layers), ``__pycache__`` is counted: bytecode for the
    runtime's CPython (``*.cpython-312.pyc``) saves compiling at every cold start; any
    other is foreign. Function code is copied by SAM without ``__pycache__``.
    """
    skip = IGNORED - {"__pycache__"} if shipped_bytecode else IGNORED
    total = files = foreign = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames:
            stat = os.lstat(os.path.join(dirpath, name))
            total += stat.st_size
            files += 1
            if name.endswith((".pyc", ".pyo")):
                runtime = name.endswith(RUNTIME_BYTECODE) and dirpath.endswith("__pycache__")
                foreign += not runtime
    return total, files, foreign


def mb(size: int) -> str:
    return f"{size / 1024 / 1024:8.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path, help="directory of built layers (and functions)")
    parser.add_argument(
        "--functions",
        type=Path,
        default=REPO / "functions",
        help="function sources, used when the artifacts hold no functions",
    )
    parser.add_argument("--limit-mb", type=float, default=LIMIT_BYTES / 1024 / 1024)
    args = parser.parse_args(argv)
    limit = int(args.limit_mb * 1024 * 1024)

    if not args.artifacts.is_dir():
        print(f"error: {args.artifacts} is not a directory", file=sys.stderr)
        return 2
    subdirs = sorted(p for p in args.artifacts.iterdir() if p.is_dir() and p.name not in IGNORED)
    layers = [p for p in subdirs if (p / "python").is_dir()]
    functions = [p for p in subdirs if p not in layers]
    if not functions and args.functions.is_dir():
        functions = sorted(
            p for p in args.functions.iterdir() if p.is_dir() and p.name not in IGNORED
        )
    if not layers:
        print(f"error: no layer (a subdirectory with python/) in {args.artifacts}", file=sys.stderr)
        return 2

    layers_total = 0
    bytecode_total = 0
    print("layers")
    for layer in layers:
        size, files, bytecode = tree_size(layer, shipped_bytecode=True)
        layers_total += size
        bytecode_total += bytecode
        print(f"  {layer.name:<24}{mb(size)}  {files:6d} files")
    print(f"  {'all layers':<24}{mb(layers_total)}")

    over = False
    print(f"functions (code + all layers; limit {mb(limit).strip()})")
    for function in functions or [Path("(no function code)")]:
        size, files, bytecode = tree_size(function) if function.is_dir() else (0, 0, 0)
        bytecode_total += bytecode
        total = size + layers_total
        verdict = "OK" if total <= limit else "OVER LIMIT"
        over |= total > limit
        print(f"  {function.name:<24}{mb(total)}  (code {mb(size).strip()})  {verdict}")
    print(f"  headroom: {mb(limit - layers_total).strip()} left for function code")

    if bytecode_total:
        print(
            f"warning: {bytecode_total} .pyc/.pyo files not built for CPython 3.12 are "
            "shipped: Lambda's python3.12 never loads them",
            file=sys.stderr,
        )
    if over:
        print("error: unzipped size exceeds Lambda's 250 MB quota", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
