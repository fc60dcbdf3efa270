"""spotvlm_ros.core imports without ROS, torch or transformers, and never imports other layers."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

from time_scale import scaled

import spotvlm_ros.core as core

BLOCKER = """
import importlib.abc, sys
BLOCKED = {"rclpy", "torch", "transformers", "cv_bridge", "rosidl_runtime_py", "tokenizers"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked import of {name}")
        return None
sys.meta_path.insert(0, Block())
import importlib, pkgutil, spotvlm_ros.core as core
mods = [m.name for m in pkgutil.walk_packages(core.__path__, "spotvlm_ros.core.")]
for m in mods:
    importlib.import_module(m)
print(len(mods))
"""


def test_core_imports_with_heavy_packages_blocked():
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER], capture_output=True, text=True, timeout=scaled(120)
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) >= 3


def test_core_never_imports_upper_layers():
    for info in pkgutil.walk_packages(core.__path__, "spotvlm_ros.core."):
        source = info.module_finder.find_spec(info.name).origin
        tree = ast.parse(Path(source).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert not module.startswith(
                    ("spotvlm_ros.runtime", "spotvlm_ros.models", "spotvlm_ros.nodes")
                ), f"{info.name} imports {module}"
                if node.level >= 2:
                    assert not module.startswith(("runtime", "models", "nodes")), (
                        f"{info.name} imports ..{module}"
                    )
