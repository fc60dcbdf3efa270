"""``spotvlm doctor``: a one-minute check that the edge and cloud models are usable by SpotVLM.

For each model named (a local directory, a Hugging Face id, an OpenAI-compatible endpoint
``http://host:8000/v1`` optionally followed by ``#served/model-name``, or ``tiny:FAMILY``) it prints the
family detected, its box convention, the visual tokens of a 640x480 frame and of a Visual Focus view
(a low-resolution full view plus two region crops), whether prefix KV reuse is on, one timed answer on
a synthetic street frame, and a grounding self-check: the box it gives for the drawn car and its IoU
with the truth. Every failure is one ``FAIL`` line naming the model and the cause; the exit status is 1
when any check failed (a low IoU only fails with ``--min-iou``), 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .core.config import ModelConfig

FRAME_SIZE = (640, 480)
FOCUS_FULL_SIDE = 224
FOCUS_CROP_SIDE = 224
QUESTION = "What is the state of the traffic light?"
GROUNDING_QUESTION = "Where is the blue car?"
EXIT_FAILED = 1


@dataclass
class Report:
    """What the checks of one model found; ``failures`` holds one line per failed check."""

    role: str
    spec: str
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def note(self, key: str, value: object) -> None:
        self.lines.append(f"  {key:<22} {value}")

    def fail(self, what: str, cause: object) -> None:
        message = " ".join(str(cause).split()) or type(cause).__name__
        self.failures.append(f"FAIL {self.role}: {what}: {message[:300]}")


def model_config(spec: str, args: argparse.Namespace) -> ModelConfig:
    """The backend config a model spec names (see the module docstring); raises ValueError when unusable."""
    common = {"max_new_tokens": args.max_new_tokens, "image_max_side": args.image_max_side}
    if spec.startswith(("http://", "https://")):
        base_url, _, served = spec.partition("#")
        served = served or served_model_name(base_url, args.timeout)
        return ModelConfig(
            backend="openai", base_url=base_url, model=served, timeout_s=args.timeout, **common
        )
    if spec.startswith("tiny:"):
        return ModelConfig(backend="tiny", model=spec.removeprefix("tiny:"), **common)
    looks_like_path = spec.startswith(("/", ".", "~")) or spec.count("/") != 1 or os.sep in spec[:1]
    if looks_like_path and not Path(spec).expanduser().is_dir():
        raise ValueError(f"no model directory at {spec} (expected a directory, a Hub id org/name or a URL)")
    path = str(Path(spec).expanduser()) if Path(spec).expanduser().is_dir() else spec
    return ModelConfig(backend="hf", model=path, device=args.device, dtype=args.dtype, **common)


def served_model_name(base_url: str, timeout: float) -> str:
    """The first model an OpenAI-compatible endpoint lists at ``/models``; ValueError when none."""
    url = f"{base_url.rstrip('/')}/models"
    try:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
        models = response.json().get("data") or []
        return str(models[0]["id"])
    except httpx.HTTPError as err:
        raise ValueError(f"endpoint {url} does not answer: {err}") from None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise ValueError(f"endpoint {url} lists no model; name it as {base_url}#org/model") from None


def check_model(role: str, spec: str, args: argparse.Namespace) -> Report:
    """Run every check on one model; never raises for a model problem (it becomes a FAIL line)."""
    from .models.base import BackendError
    from .models.factory import create_backend

    report = Report(role, spec)
    try:
        config = model_config(spec, args)
        backend = create_backend(config, role)
    except (ValueError, BackendError, OSError) as err:
        report.fail("cannot load", err)
        return report
    try:
        _describe(report, backend, config)
        if _timed_answer(report, backend):
            _grounding(report, backend, args.min_iou)
    finally:
        backend.close()
    return report


def _describe(report: Report, backend: Any, config: ModelConfig) -> None:
    from .bench.models import focus_images, synthetic_frame
    from .models.families import COORD_NOTES

    family = backend.family
    report.note("backend", backend.name)
    report.note(
        "family", f"{family.title} [{family.name}]" if family.name != "unknown" else "not in the table"
    )
    convention = backend.convention
    origin = "set in config" if convention.source == "config" else "family default"
    note = COORD_NOTES.get(convention.coord_format, "")
    report.note("boxes", f"{convention.coord_format} ({note}), {origin}")
    width, height = FRAME_SIZE
    image, boxes = synthetic_frame(width, height, seed=0)
    views = focus_images(image, boxes, FOCUS_FULL_SIDE, FOCUS_CROP_SIDE)
    full = backend.image_tokens(width, height)
    focus = sum(backend.image_tokens(view.shape[1], view.shape[0]) for view in views)
    report.note("visual tokens 640x480", full)
    sides = " + ".join(f"{v.shape[1]}x{v.shape[0]}" for v in views)
    report.note("visual tokens focus", f"{focus} ({sides})")
    if config.backend == "openai":
        report.note("prefix reuse", "server side (vLLM/SGLang prefix caching), not controlled here")
    elif backend.prefix_reuse_mode == "snapshot":
        report.note(
            "prefix reuse", f"on (exact, snapshot of the prefix run alone: {backend.prefix_reuse_note})"
        )
    elif backend.prefix_reuse:
        report.note("prefix reuse", "on (exact)")
    else:
        report.note("prefix reuse", "off (prefix_cache is false)")


def _messages(question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def _timed_answer(report: Report, backend: Any) -> bool:
    from .bench.models import synthetic_frame
    from .models.base import BackendError

    image, _ = synthetic_frame(*FRAME_SIZE, seed=1)
    start = time.perf_counter()
    try:
        result = backend.generate(_messages(QUESTION), [image])
    except BackendError as err:
        report.fail("answer", err)
        return False
    seconds = time.perf_counter() - start
    answer = " ".join(result.text.split())[:80]
    report.note("answer", f"{seconds:.2f} s, {result.prompt_tokens} prompt tokens: {answer!r}")
    return True


def _grounding(report: Report, backend: Any, min_iou: float) -> None:
    from .bench.models import synthetic_frame
    from .core.types import Box
    from .models.base import BackendError

    image, boxes = synthetic_frame(*FRAME_SIZE, seed=2)
    truth = Box(*map(float, boxes[1]))
    try:
        result = backend.generate(_messages(GROUNDING_QUESTION), [image], want_regions=True)
    except BackendError as err:
        report.fail("grounding", err)
        return
    if not result.regions:
        report.note("grounding IoU", f"0.00 (no box: {result.region_error})")
        iou = 0.0
    else:
        best = max(result.regions, key=lambda region: region.box.iou(truth))
        iou = best.box.iou(truth)
        box = best.box
        report.note("grounding IoU", f"{iou:.2f} (box {box.x1:.0f},{box.y1:.0f},{box.x2:.0f},{box.y2:.0f})")
    if iou < min_iou:
        report.fail("grounding", f"IoU {iou:.2f} below --min-iou {min_iou:.2f}")


def add_doctor_command(sub: Any) -> None:
    """Register ``spotvlm doctor`` on the CLI's subparsers."""
    doctor = sub.add_parser(
        "doctor", help="check the edge and cloud models: family, tokens, answer, grounding"
    )
    doctor.add_argument(
        "--edge-model", default="", help="directory, Hub id, http(s) endpoint[#name] or tiny:FAMILY"
    )
    doctor.add_argument("--cloud-model", default="", help="same forms as --edge-model")
    doctor.add_argument("--device", default="cpu", help="torch device for local models")
    doctor.add_argument("--dtype", default="auto", choices=("float32", "float16", "bfloat16", "auto"))
    doctor.add_argument(
        "--image-max-side", type=int, default=640, help="longest image side fed to the models"
    )
    doctor.add_argument("--max-new-tokens", type=int, default=48)
    doctor.add_argument("--timeout", type=float, default=60.0, help="seconds per endpoint request")
    doctor.add_argument("--min-iou", type=float, default=0.0, help="fail when the grounding IoU is lower")
    doctor.set_defaults(func=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    """Check each model named and print the report; 0 when every check passed, 1 otherwise."""
    models = [(role, spec) for role, spec in (("edge", args.edge_model), ("cloud", args.cloud_model)) if spec]
    if not models:
        print("FAIL doctor: name a model with --edge-model and/or --cloud-model")
        return EXIT_FAILED
    failures: list[str] = []
    for role, spec in models:
        report = check_model(role, spec, args)
        print(f"{role}: {spec}")
        print("\n".join(report.lines))
        for line in report.failures:
            print(line)
        failures += report.failures
    print(f"doctor: {len(failures)} failure(s)" if failures else "doctor: ok")
    return EXIT_FAILED if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``spotvlm doctor`` with ``argv``."""
    parser = argparse.ArgumentParser(prog="spotvlm")
    add_doctor_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["doctor", *(argv or [])])
    return int(args.func(args))
