"""The ``spotvlm train-demo`` subcommand (registered by :mod:`spotvlm_ros.cli`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .recipe import CURRICULA

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Train a demo model on the synthetic driving world (Qwen2.5-VL architecture, tiny):
  lvlm: 4 vision + 4 text layers, width 128, model input 224x168
  svlm: 2 + 2 layers, width 128, model input 112x84; part of its prompts are recorded from the real
        runtime (context turns of LVLM-style answers, some corrupted; focus crops; its own answers)
Curriculum (staged): crop-level and large-object questions + localisation of the light first, then
half and half, then full frames of every task. AdamW, lr 1.5e-3, warmup + cosine, loss on answer
tokens. A second phase (--curriculum answers --init-from PHASE1/model, lr 1e-3) weights the batches
towards the VQA answers and (SVLM) the runtime prompts; the shipped models were trained this way.

OUT holds the data cache, checkpoint.pt (resume with --resume), train_log.jsonl/.csv (loss, lr,
stage; held-out accuracy per question group at every evaluation) and, at the end, the exported
model (OUT/model, or --export DIR): safetensors + processor + tokenizer + training_info.json (every
phase's command, steps and accuracy) + train_log.csv (every phase's log, a phase column), loadable
with --set edge.backend=hf --set edge.model=DIR. --minutes counts training steps only
(not data building or evaluation). Expect about 2-3 CPU hours for the LVLM (minutes on a GPU)."""


def _command_line(args: argparse.Namespace, out: Path) -> str:
    """The command that repeats this run (recorded in training_info.json)."""
    words = ["spotvlm", "train-demo", "--role", args.role, "--out", str(out), "--seed", str(args.seed)]
    for flag, value, default in (
        ("--steps", args.steps, 0),
        ("--minutes", args.minutes, 0.0),
        ("--device", args.device, "cpu"),
        ("--threads", args.threads, 1),
        ("--eval-every", args.eval_every, -1),
        ("--curriculum", args.curriculum, "staged"),
        ("--init-from", args.init_from, None),
        ("--export", args.export, None),
    ):
        if value != default:
            words += [flag, str(value)]
    words += ["--micro"] if args.micro else []
    return shlex.join(words)


def cmd_train_demo(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from .trainer import TrainError, TrainOptions, train

    hf_logging.disable_progress_bar()
    out = args.out or Path("out/train") / args.role
    options = TrainOptions(
        role=args.role,
        out_dir=out,
        steps=args.steps,
        minutes=args.minutes,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        resume=args.resume,
        export_dir=args.export,
        micro=args.micro,
        eval_every_steps=args.eval_every,
        curriculum=args.curriculum,
        init_from=args.init_from,
        command=_command_line(args, out),
    )
    try:
        result = train(options, log=lambda line: print(line, flush=True))
    except (TrainError, ValueError) as err:
        print(f"spotvlm train-demo: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, RuntimeError) as err:
        print(f"spotvlm train-demo: {err}", file=sys.stderr)
        return EXIT_FAILURE
    shown = ", ".join(f"{group} {value:.3f}" for group, value in result.accuracy.items())
    print(f"trained {result.steps} steps in {result.elapsed_s / 60:.1f} min; held-out accuracy: {shown}")
    print(f"model: {result.export_dir}")
    return EXIT_OK


def add_train_command(sub: argparse._SubParsersAction) -> None:
    """Register ``train-demo`` on the ``spotvlm`` parser."""
    parser = sub.add_parser(
        "train-demo",
        help="train the demo LVLM or SVLM on the synthetic world (not part of CI)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: nice -n 10 spotvlm train-demo --role lvlm --minutes 150 --threads 2 "
        "--out runs/lvlm1\n"
        "exit codes: 0 trained and exported, 1 runtime failure, 2 usage error",
    )
    parser.add_argument("--role", choices=("lvlm", "svlm"), required=True, help="which model to train")
    parser.add_argument("--out", type=Path, default=None, help="run directory (out/train/ROLE)")
    parser.add_argument("--export", type=Path, default=None, help="where to export the model (OUT/model)")
    parser.add_argument("--steps", type=int, default=0, help="optimiser steps (the recipe's: lvlm 12000)")
    parser.add_argument("--minutes", type=float, default=0.0, help="stop after this much training time")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, initialisation and batches (0)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 (cpu)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    parser.add_argument("--resume", action="store_true", help="continue the run in OUT from its checkpoint")
    parser.add_argument(
        "--eval-every", type=int, default=-1, help="evaluate every N steps (recipe's; 0 = only at the end)"
    )
    parser.add_argument(
        "--curriculum",
        choices=CURRICULA,
        default="staged",
        help="staged: the four-stage curriculum from scratch; answers: a second phase weighted towards "
        "the VQA answers; light / objects (LVLM): a phase weighted towards the light / the car count and "
        "the pedestrian; focus (SVLM): a phase weighted towards the runtime prompts, the light's most "
        "(use these with --init-from)",
    )
    parser.add_argument(
        "--init-from", type=Path, default=None, help="start from this exported model's weights (a new run)"
    )
    parser.add_argument(
        "--micro", action="store_true", help="a tiny model and data set (plumbing checks, tests)"
    )
    parser.set_defaults(func=cmd_train_demo)
