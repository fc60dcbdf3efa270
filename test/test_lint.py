"""The code base passes ruff (pycodestyle, pyflakes, pep257 docstrings, import order, naming)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from time_scale import scaled

TARGETS = ["spotvlm_ros", "launch", "test", "setup.py"]


@pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None, reason="ruff not installed (pip install .[test])"
)
@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(repo_root, command):
    targets = [t for t in TARGETS if (repo_root / t).exists()]
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", *command, *targets],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
