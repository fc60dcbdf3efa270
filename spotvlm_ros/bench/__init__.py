"""Benchmarks: ``spotvlm bench NAME`` runs ``spotvlm_ros.bench.NAME.main(argv)``.

Every benchmark prints human-readable lines, then as its LAST line exactly one machine-readable line
``BENCH <name> <json object>``; ratios are measured side by side in the same run and named ``*_ratio``.
``spotvlm bench all`` runs every benchmark and writes a JSON + markdown summary.
"""

from __future__ import annotations

import json
from typing import Any

BENCHMARKS = ("core", "models", "replay", "accuracy", "targets", "soak", "importer")

# figure -> (comparison, target), from DESIGN.md "Benchmarks: one output convention"
TARGETS: dict[str, tuple[str, float]] = {
    "core_step_vs_jpeg_decode_ratio": ("<=", 2.0),
    "prefix_reuse_speedup_ratio": (">=", 1.3),
    "focus_visual_token_ratio": (">=", 2.0),
    "focus_speedup_ratio": (">=", 1.5),
    "replay_vs_plain_read_ratio": (">=", 0.7),
    "multicam_replay_vs_plain_read_ratio": (">=", 0.6),
    "gap_closed_mean1p5s": (">=", 0.6),
    "gap_closed_mean5s": (">=", 0.5),
    "latency_vs_svlm_ratio": ("<=", 1.15),
    "lvlm_vqa_light": (">=", 0.9),
    "lvlm_vqa_cars": (">=", 0.9),
    "lvlm_vqa_pedestrian": (">=", 0.9),
    "svlm_focus_light": (">=", 0.8),
    "rss_growth_fraction": ("<=", 0.05),
    "ticks_answered_fraction": (">=", 0.99),
}


def bench_line(name: str, figures: dict[str, Any]) -> str:
    """The machine-readable last line of a benchmark."""
    return f"BENCH {name} {json.dumps(figures, sort_keys=True)}"


def parse_bench_line(output: str) -> tuple[str, dict[str, Any]] | None:
    """The (name, figures) of the last non-empty line of ``output`` when it is a BENCH line."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("BENCH "):
        return None
    _, name, payload = lines[-1].split(" ", 2)
    return name, json.loads(payload)


def meets_target(figure: str, value: Any) -> bool | None:
    """Whether ``value`` meets the target of ``figure``; None when it has no target."""
    if figure not in TARGETS or not isinstance(value, (int, float)):
        return None
    op, target = TARGETS[figure]
    return value <= target if op == "<=" else value >= target
