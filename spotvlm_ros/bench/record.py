"""Keep a benchmark's figures in a markdown record (``docs/benchmarks.md``): date, device, command, table."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import TARGETS, meets_target

HEADER = """# Benchmark record

Figures of `spotvlm bench` runs, newest last, each with its date, device and the command that produced it.
On a GPU machine, `spotvlm bench models --device cuda --record docs/benchmarks.md` adds the real-size
Qwen2.5-VL-3B and 7B figures (random weights, bf16) beside the tiny model's.
"""


def describe_device(gpu: bool, threads: int) -> str:
    """The machine a run timed: the GPU's name and memory, else the CPU and the torch thread count."""
    import torch

    if gpu:
        props = torch.cuda.get_device_properties(0)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores, {threads} torch thread(s)"


def record_section(name: str, argv: Sequence[str], device: str, figures: dict[str, Any]) -> str:
    """The markdown section of one run: heading with date and device, the command, a table of figures."""
    import torch
    import transformers

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = shlex.join(["spotvlm", "bench", name, *argv])
    lines = [
        f"## `{name}`, {stamp}, {device}",
        "",
        f"`{command}` (torch {torch.__version__}, transformers {transformers.__version__})",
        "",
        "| figure | value | target | met |",
        "|---|---|---|---|",
    ]
    for figure, value in figures.items():
        op, target = TARGETS.get(figure, ("", ""))
        met = meets_target(figure, value)
        verdict = "" if met is None else "yes" if met else "NO"
        lines.append(f"| `{figure}` | {value} | {f'{op} {target}'.strip()} | {verdict} |")
    return "\n".join(lines) + "\n"


def append_record(path: Path, section: str) -> None:
    """Append ``section`` to the record at ``path`` (created with its header when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.is_file() else HEADER
    path.write_text(text.rstrip("\n") + "\n\n" + section)
