"""Shell blocks of the README and the docs marked runnable run as written.

A fenced ``bash`` block is runnable when the line before its fence is ``<!-- runnable -->`` (cheap: run
here) or ``<!-- runnable: slow -->`` (minutes: run under ``-m slow``). Each block runs with ``bash -e`` in
a fresh folder holding the repository's ``rosbags``, ``config`` and ``spotvlm_ros`` (links), an empty
``docs`` and ``out``, with this interpreter's ``bin`` (the project's ``spotvlm``) first on ``PATH``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from time_scale import scaled

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINKED = ("rosbags", "config", "spotvlm_ros")
MARK = re.compile(r"^<!--\s*runnable(?::\s*(?P<kind>slow))?\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)")
CHEAP_TIMEOUT_S = scaled(120)
SLOW_TIMEOUT_S = scaled(900)


@dataclass(frozen=True)
class Block:
    """One marked shell block: where it is, whether it is slow, and its text."""

    page: str
    line: int
    slow: bool
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


class DocsError(ValueError):
    """A runnable mark that does not sit on a fenced bash block."""


def runnable_blocks(text: str, page: str) -> list[Block]:
    """The blocks of ``text`` marked runnable; a mark not followed by a ```bash fence is an error."""
    lines = text.splitlines()
    blocks = []
    for index, line in enumerate(lines):
        mark = MARK.match(line.strip())
        if not mark:
            continue
        fence = FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
        if fence is None or fence.group("lang") not in ("bash", "sh", "shell"):
            raise DocsError(f"{page}:{index + 1}: a runnable mark must sit right above a ```bash block")
        end = next((i for i in range(index + 2, len(lines)) if lines[i].startswith("```")), None)
        if end is None:
            raise DocsError(f"{page}:{index + 2}: the block is never closed")
        code = "\n".join(lines[index + 2 : end]) + "\n"
        blocks.append(Block(page, index + 3, mark.group("kind") == "slow", code))
    return blocks


def all_blocks() -> list[Block]:
    return [
        block for page in PAGES for block in runnable_blocks(page.read_text(), str(page.relative_to(REPO)))
    ]


def _params(slow: bool) -> list:
    return [pytest.param(b, id=b.id) for b in all_blocks() if b.slow == slow]


def run_block(block: Block, workdir: Path, timeout_s: float) -> subprocess.CompletedProcess:
    """Run ``block`` with ``bash -e`` in ``workdir`` (prepared with the repository's data folders)."""
    for name in LINKED:
        (workdir / name).symlink_to(REPO / name, target_is_directory=True)
    (workdir / "docs").mkdir()
    (workdir / "out").mkdir()
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env.setdefault("HF_HUB_OFFLINE", "1")
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.code],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def _check(block: Block, workdir: Path, timeout_s: float) -> None:
    proc = run_block(block, workdir, timeout_s)
    assert proc.returncode == 0, (
        f"{block.id} failed (exit {proc.returncode}):\n{block.code}\n"
        f"--- stdout (tail) ---\n{proc.stdout[-3000:]}\n--- stderr (tail) ---\n{proc.stderr[-3000:]}"
    )


@pytest.mark.parametrize("block", _params(slow=False))
def test_cheap_runnable_block_runs(block: Block, tmp_path: Path):
    _check(block, tmp_path, CHEAP_TIMEOUT_S)


@pytest.mark.slow
@pytest.mark.parametrize("block", _params(slow=True))
def test_slow_runnable_block_runs(block: Block, tmp_path: Path):
    _check(block, tmp_path, SLOW_TIMEOUT_S)


def test_the_cli_help_and_config_blocks_are_marked_runnable():
    codes = "".join(b.code for b in all_blocks() if not b.slow)
    for command in ("spotvlm --help", "spotvlm config config/spotvlm.yaml", "spotvlm replay --help"):
        assert command in codes, f"no cheap runnable block runs `{command}`"


def test_marks_are_found_and_misplaced_marks_are_errors():
    text = (
        "text\n<!-- runnable -->\n```bash\necho one\necho two\n```\n"
        "<!-- runnable: slow -->\n```bash\nsleep 1\n```\n"
    )
    blocks = runnable_blocks(text, "page.md")
    assert [(b.line, b.slow, b.code) for b in blocks] == [
        (4, False, "echo one\necho two\n"),
        (9, True, "sleep 1\n"),
    ]
    with pytest.raises(DocsError, match="page.md:1"):
        runnable_blocks("<!-- runnable -->\n```python\nprint(1)\n```\n", "page.md")
    with pytest.raises(DocsError, match="never closed"):
        runnable_blocks("<!-- runnable -->\n```bash\necho\n", "page.md")


def test_a_failing_block_fails(tmp_path: Path):
    proc = run_block(
        Block("page.md", 1, False, "spotvlm config no/such/file.yaml\necho after\n"), tmp_path, scaled(60)
    )
    assert proc.returncode != 0 and "after" not in proc.stdout


def test_the_readme_links_to_files_that_exist():
    """MkDocs checks the site's links; the README is not part of the site, so its links are checked here."""
    text = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    relative = [t for t in targets if "://" not in t]
    assert relative, "the README links to no docs page"
    missing = [t for t in relative if not (REPO / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
