"""``spotvlm bench targets``: the accuracy targets of the trained demo pair, on clips no run has seen.

Figures (each with its target in ``TARGETS`` of this package): ``lvlm_vqa_light``, ``lvlm_vqa_cars``,
``lvlm_vqa_pedestrian`` (>= 0.9) and ``svlm_focus_light`` (SVLM with a focus crop of the light and a
fresh contradicting context, >= 0.8); plus every held-out group's accuracy per model (``lvlm:vqa:light``,
``svlm:vqa:light`` ...) and the set's size. The SVLM's own light accuracy has no ceiling: the best SVLM
that can be trained is the one to ship.
Without trained models (none shipped, none given) it says so and prints no figures.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from . import TARGETS, bench_line, meets_target


def _parser() -> argparse.ArgumentParser:
    from ..training.targets import UNSEEN_CLIPS, UNSEEN_PER_GROUP

    parser = argparse.ArgumentParser(prog="spotvlm bench targets", description=__doc__.splitlines()[0])
    parser.add_argument("--lvlm", type=Path, default=None, help="LVLM model dir (shipped one)")
    parser.add_argument("--svlm", type=Path, default=None, help="SVLM model dir (shipped one)")
    parser.add_argument("--clips", type=int, default=UNSEEN_CLIPS, help=f"unseen clips ({UNSEEN_CLIPS})")
    parser.add_argument(
        "--per-group", type=int, default=UNSEEN_PER_GROUP, help=f"samples per group ({UNSEEN_PER_GROUP})"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.clips < 1 or args.per_group < 1:
        raise SystemExit("spotvlm bench targets: --clips and --per-group must be >= 1")
    import torch
    from transformers.utils import logging as hf_logging

    from ..training.scenario import demo_model_dir, scenario_config
    from ..training.targets import ROLES, UNSEEN_SEED, model_accuracy, target_figures, unseen_sets
    from ..training.targets import TARGETS as MODEL_TARGETS

    torch.set_num_threads(max(1, args.threads))
    hf_logging.disable_progress_bar()
    dirs = {"lvlm": args.lvlm or demo_model_dir("lvlm"), "svlm": args.svlm or demo_model_dir("svlm")}
    missing = [str(d) for d in dirs.values() if not (d / "training_info.json").is_file()]
    if missing:
        print(f"no trained models: {', '.join(missing)} hold no exported model (spotvlm train-demo)")
        print(bench_line("targets", {"trained_models": False}))
        return 0
    started = time.perf_counter()
    config = scenario_config()
    sets = unseen_sets(dirs, config, args.clips, args.per_group)
    accuracy = {role: model_accuracy(dirs[role], role, sets[role], config) for role in ROLES}
    figures: dict[str, object] = {"trained_models": True, **target_figures(accuracy)}
    print(f"unseen clips: seed {UNSEEN_SEED}, {args.clips} clips, {args.per_group} samples per group")
    for role in ROLES:
        print(f"{role} ({dirs[role]}): " + ", ".join(f"{g} {v:.3f}" for g, v in accuracy[role].items()))
        figures |= {f"{role}:{group}": round(value, 4) for group, value in accuracy[role].items()}
    for target in MODEL_TARGETS:
        value = figures[target.figure]
        met = meets_target(target.figure, value)
        verdict = "n/a" if met is None else ("met" if met else "NOT met")
        op, threshold = TARGETS[target.figure]
        print(f"{target.figure}: {value} (target {op} {threshold}; {target.description}): {verdict}")
    figures["samples"] = sum(len(s) for s in sets.values())
    print(f"({time.perf_counter() - started:.0f} s)")
    print(bench_line("targets", figures))
    return 0
