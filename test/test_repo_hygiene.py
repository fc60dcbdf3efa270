"""No tracked file names a folder of the machine it was written on.

Greps every file ``git ls-files`` lists (binary files excepted) for the folder this checkout lives in,
the folder above it and the home directory, all computed here at run time. Folders every machine has
(``/tmp``, ``/home``, ...) are not machine-specific and are not searched for on their own.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from time_scale import scaled

REPO = Path(__file__).resolve().parents[1]
SHARED_ROOTS = {"/", "/tmp", "/var/tmp", "/home", "/Users", "/opt", "/usr", "/srv", "/mnt", "/var"}


def machine_folders() -> list[str]:
    """The checkout's folder, its parent and the home directory, minus folders every machine has."""
    folders = {str(REPO), str(REPO.parent), str(Path.home().resolve()), str(Path.home())}
    return sorted(f for f in folders if f not in SHARED_ROOTS)


def path_pattern(folders: list[str]) -> re.Pattern[str]:
    """A folder as a path, not in a longer name: ``/data/lab`` finds ``/data/lab/x``, not ``/data/labs``."""
    alternatives = "|".join(re.escape(f) for f in sorted(folders, key=len, reverse=True))
    return re.compile(rf"(?<![\w.~/-])(?:{alternatives})(?![\w.-])")


def tracked_files() -> list[Path]:
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, timeout=scaled(60))
    if proc.returncode != 0:
        pytest.skip(f"not a git checkout ({proc.stderr.decode(errors='replace').strip()}): nothing to grep")
    return [REPO / name for name in proc.stdout.decode().split("\0") if name]


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary file (a NUL byte, or not UTF-8) or one that is gone."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None  # deleted in the working tree, or a submodule
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_the_pattern_finds_paths_and_spares_longer_names():
    pattern = path_pattern(["/data/lab", "/home/alice"])
    assert pattern.search("run --out /data/lab/runs")
    assert pattern.search('"init_from": "/home/alice"')
    assert not pattern.search("/data/laboratory and /data/lab.old and ~/data/lab")


def test_no_tracked_file_names_a_machine_folder():
    folders = machine_folders()
    pattern = path_pattern(folders)
    hits = []
    for path in tracked_files():
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:160]}")
    assert not hits, f"machine paths ({', '.join(folders)}) in tracked files:\n" + "\n".join(hits)
