"""Benchmarks: ``spotvlm bench NAME`` runs ``spotvlm_ros.bench.NAME.main(argv)``.

Every benchmark prints human-readable lines, then as its LAST line exactly one machine-readable line
``BENCH <name> <json object>``; ratios are measured side by side in the same run and named ``*_ratio``.
"""

from __future__ import annotations

import json
from typing import Any

BENCHMARKS = ("core", "models", "replay", "accuracy", "soak")


def bench_line(name: str, figures: dict[str, Any]) -> str:
    """The machine-readable last line of a benchmark."""
    return f"BENCH {name} {json.dumps(figures, sort_keys=True)}"
