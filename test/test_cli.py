"""The spotvlm command: exit codes and messages scripts can trust."""

from __future__ import annotations

import subprocess
import sys

from time_scale import scaled


def _run(*args: str):
    return subprocess.run(
        [sys.executable, "-m", "spotvlm_ros.cli", *args], capture_output=True, text=True, timeout=scaled(600)
    )


def test_help_lists_commands():
    proc = _run("--help")
    assert proc.returncode == 0
    assert "demo" in proc.stdout


def test_bad_config_exits_2_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("context:\n  max_context_age_s: -2\n")
    proc = _run("config", str(bad))
    assert proc.returncode == 2
    assert "context.max_context_age_s = -2" in proc.stderr


def test_config_command_prints_parameters(repo_root):
    proc = _run("config", str(repo_root / "config" / "spotvlm.yaml"))
    assert proc.returncode == 0
    assert "context.max_context_age_s: 10.0" in proc.stdout
