"""``spotvlm bench all``: run every benchmark, each in its own process, and write one summary.

Writes ``OUT/summary.json`` (every figure of every benchmark, with its command, exit code and whether
the figures with a target meet it) and ``OUT/summary.md`` (the same as tables), plus each benchmark's
full output as ``OUT/<name>.log``. Benchmarks run one after another so they do not disturb each other.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import BENCHMARKS, TARGETS, bench_line, meets_target, parse_bench_line


def run_benchmark(name: str, extra: Sequence[str], out: Path, timeout_s: float) -> dict[str, Any]:
    """Run ``spotvlm bench NAME`` in a subprocess; its figures, exit code and command."""
    command = [sys.executable, "-m", "spotvlm_ros.cli", "bench", name, *extra]
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as err:
        output, code = f"{err.stdout or ''}\ntimed out after {timeout_s:.0f} s", 124
    (out / f"{name}.log").write_text(output)
    parsed = parse_bench_line(output) if code == 0 else None
    figures = parsed[1] if parsed else {}
    return {
        "command": f"spotvlm bench {' '.join([name, *extra])}",
        "exit_code": code,
        "seconds": round(time.perf_counter() - started, 1),
        "figures": figures,
        "targets": {k: meets_target(k, v) for k, v in figures.items() if k in TARGETS},
    }


def markdown(results: dict[str, dict[str, Any]], machine: str) -> str:
    """The summary as markdown tables, one per benchmark."""
    lines = ["# SpotVLM benchmarks", "", f"Machine: {machine}", ""]
    for name, result in results.items():
        lines += [
            f"## {name}",
            "",
            f"`{result['command']}` (exit {result['exit_code']}, {result['seconds']} s)",
            "",
        ]
        if not result["figures"]:
            lines += [f"No figures: see `{name}.log`.", ""]
            continue
        lines += ["| figure | value | target | met |", "|---|---|---|---|"]
        for figure, value in result["figures"].items():
            op, target = TARGETS.get(figure, ("", ""))
            met = result["targets"].get(figure)
            mark = "" if met is None else ("yes" if met else "NO")
            lines.append(f"| `{figure}` | {value} | {op} {target} | {mark} |")
        lines.append("")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotvlm bench all", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench"), help="output folder (out/bench)")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, default=None, help="run only these")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per benchmark (1800)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip()
    results = {}
    for name in args.only or BENCHMARKS:
        print(f"running spotvlm bench {name} ...", flush=True)
        results[name] = run_benchmark(name, [], args.out, args.timeout)
        print(
            f"  exit {results[name]['exit_code']} in {results[name]['seconds']} s: {results[name]['figures']}"
        )
    (args.out / "summary.json").write_text(json.dumps({"machine": machine, "benchmarks": results}, indent=2))
    (args.out / "summary.md").write_text(markdown(results, machine))
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'summary.md'}")
    failed = [name for name, r in results.items() if r["exit_code"] != 0]
    missed = sorted(f for r in results.values() for f, met in r["targets"].items() if met is False)
    print(bench_line("all", {"benchmarks": len(results), "failed": failed, "targets_missed": missed}))
    return 1 if failed else 0
