"""``spotvlm eval`` on a bag with DriveLM ground truth (called by :mod:`spotvlm_ros.cli_run`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .core.config import SpotVlmConfig

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def wants_drivelm(args: argparse.Namespace) -> bool:
    """``--tasks drivelm``, or no ``--tasks`` and a bag whose ground truth holds DriveLM questions."""
    tasks = [t.strip() for t in (args.tasks or "").split(",") if t.strip()]
    if tasks:
        return "drivelm" in tasks
    from .core.annotations import ANNOTATIONS_FILE, AnnotationError, load_annotations
    from .runtime.eval.drivelm import has_drivelm_truth

    sidecar = (args.bag if args.bag.is_dir() else args.bag.parent) / ANNOTATIONS_FILE
    try:
        return sidecar.is_file() and has_drivelm_truth(load_annotations(sidecar))
    except AnnotationError:
        return False  # the general evaluation reports the bad ground truth


def cmd_eval_drivelm(args: argparse.Namespace, config: SpotVlmConfig, backends: Any, errors: Any) -> int:
    """Run the DriveLM evaluation, print the tables, write OUT/report.md and OUT/results.json."""
    from .runtime.eval.drivelm import run_drivelm_eval
    from .runtime.eval.drivelm_report import text_table, write_outputs
    from .runtime.eval.runner import EvalError

    modes = [m.strip() for m in args.modes.split(",") if m.strip()] or list(config.eval.modes)
    profiles = list(args.profile or config.latency.profiles)
    groups = [g.strip() for g in args.groups.split(",") if g.strip()] if args.groups else []

    def progress(sequence: str, questions: int) -> None:
        if not args.quiet:
            print(f"eval {args.bag.name}: drive {sequence} done ({questions} questions)", file=sys.stderr)

    try:
        with backends(config) as (edge, cloud):
            kwargs = {"groups": groups} if groups else {}
            results = run_drivelm_eval(
                args.bag,
                config,
                modes=modes,
                profiles=profiles,
                per_group=args.per_group,
                ids=[q.strip() for q in args.questions.split(",") if q.strip()],
                jobs=args.jobs,
                backends=lambda: (edge, cloud),
                on_drive=progress,
                **kwargs,
            )
            extra = {"edge_model": edge.name, "cloud_model": cloud.name, "jobs": args.jobs}
    except (EvalError, ValueError) as err:
        print(f"spotvlm eval: {err}", file=sys.stderr)
        return EXIT_USAGE
    except errors() as err:
        print(f"spotvlm eval: {err}", file=sys.stderr)
        return EXIT_FAILURE
    print(text_table(results))
    outputs = write_outputs(results, Path(args.out), extra)
    print(f"report: {outputs['report']}\nnumbers: {outputs['results']}")
    return EXIT_OK
