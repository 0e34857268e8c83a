"""The client runs without the server's dependencies: only the standard library.

A fresh interpreter refuses to import numpy, OpenCV, boto3 and Powertools, so an import
of any of them anywhere under ``opencrs.client`` or ``opencrs.wire`` fails this test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from local.runtime import DEFAULT_APP_KEY, DEFAULT_APP_SECRET

LAYER = Path(__file__).resolve().parents[2] / "layers" / "opencrs"

PROGRAM = textwrap.dedent(
    """
    import contextlib, io, sys

    HEAVY = {"numpy", "cv2", "boto3", "botocore", "aws_lambda_powertools"}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HEAVY:
                raise ImportError(f"{name} is not installed here")
            return None

    sys.meta_path.insert(0, Refuse())

    from opencrs.client.commands import main

    help_text = io.StringIO()
    with contextlib.redirect_stdout(help_text):
        try:
            main(["--help"])
        except SystemExit as done:
            assert done.code == 0, done.code
    assert "usage: opencrs" in help_text.getvalue()
    assert main(["token", "--ttl", "60"], out=io.StringIO()) == 0
    loaded = sorted(n for n in sys.modules if n.split(".")[0] in HEAVY)
    assert not loaded, loaded
    print("standalone ok")
    """
)


def test_the_client_imports_and_runs_without_numpy_opencv_or_boto3(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(LAYER), os.environ.get("PYTHONPATH", "")]),
        "OPENCRS_APP_KEY": DEFAULT_APP_KEY,
        "OPENCRS_APP_SECRET": DEFAULT_APP_SECRET,
        "OPENCRS_CONFIG": str(tmp_path / "none.json"),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "standalone ok"
