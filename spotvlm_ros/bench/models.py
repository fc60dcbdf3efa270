"""``spotvlm bench models``: what prefix-KV reuse and Visual Focus save in a real generate call.

On the tiny Qwen2.5-VL model (CPU, fixed thread count): per-frame generate time with and without
prefix-KV reuse at 256 and 1024 context tokens, and full frame versus focus view (a low-resolution full
view plus region crops, built by core's VisualFocus) in visual tokens and time. With a GPU, the same on
the real-size Qwen2.5-VL-3B and 7B architectures (random weights, bf16): per-frame latency p50/p95,
full frame versus focus, with and without prefix reuse. Answers have a fixed length (end-of-sequence
is ignored), so variants decode the same number of tokens. The full frame is fed at the model's own
resolution (no extra downscale). Variants take turns frame by frame, and each ratio is the median of
the per-frame ratios, so load changes on a shared machine hit both sides alike.

Per model family (``family_*`` figures, every family of :mod:`..models.families`): visual tokens of the
full frame and of the focus view by the family's published resize rule, and, on the tiny model of each
family, the prefix reuse speedup (cut back from the last prompt's cache, or for Qwen3.5 and Gemma 4 a
snapshot of the prefix run alone).

In the pipeline (``pipeline_*`` figures): the edge runtime (Context Replacement over a fixed context of
two LVLM keyframe answers, the SVLM's own answers recorded every frame) drives the tiny model with and
without prefix reuse, frame by frame; ``pipeline_prefix_hit_fraction`` is the share of frames after the
first whose prompt prefix came from the KV cache.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import bench_line

QUESTION = "What is the state of the traffic light?"
LABELS = ("traffic light", "car")  # the objects of synthetic_frame, in its order
ANSWERS = (
    "The traffic light is red. A pedestrian is crossing the road in front of the robot.",
    "The traffic light is green. A car is on the left of the road, about 12 meters away.",
)


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width < 32 or height < 32:
        raise argparse.ArgumentTypeError(f"frame must be at least 32x32, got {text!r}")
    return width, height


def synthetic_frame(width: int, height: int, seed: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A street-like RGB frame and the boxes (x1, y1, x2, y2) of its traffic light and its car."""
    import cv2

    rng = np.random.default_rng(seed)
    image = rng.integers(60, 120, (height, width, 3), dtype=np.uint8)
    cv2.rectangle(image, (0, height // 2), (width, height), (90, 90, 90), -1)
    lx, ly = int(width * rng.uniform(0.55, 0.8)), int(height * rng.uniform(0.1, 0.25))
    light = (lx, ly, lx + width // 30 + 4, ly + height // 8 + 8)
    cv2.rectangle(image, light[:2], light[2:], (20, 20, 20), -1)
    cv2.circle(image, (lx + width // 60 + 2, ly + height // 40 + 2), max(2, width // 90), (230, 30, 30), -1)
    cx, cy = int(width * rng.uniform(0.1, 0.4)), int(height * rng.uniform(0.55, 0.7))
    car = (cx, cy, cx + width // 6, cy + height // 8)
    cv2.rectangle(image, car[:2], car[2:], (30, 60, 200), -1)
    return image, [light, car]


def focus_images(
    image: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], full_size: int, crop_size: int
) -> list[np.ndarray]:
    """The Visual Focus crop view core builds for an LVLM context with ``boxes`` on this very frame."""
    from ..core.config import FocusConfig
    from ..core.focus import VisualFocus
    from ..core.types import Box, Frame, LvlmResult, Region

    height, width = image.shape[:2]
    config = FocusConfig(mode="crop", propagation="static", full_size=full_size, crop_size=crop_size)
    regions = tuple(Region(Box(*map(float, box)), label) for box, label in zip(boxes, LABELS, strict=True))
    context = LvlmResult("bench", 0, "vqa", QUESTION, "", regions=regions, image_size=(width, height))
    return VisualFocus(config).prepare(Frame(0, image), context, None).images


def history_messages(processor: Any, context_tokens: int) -> list[dict]:
    """System prompt and past turns filling at least ``context_tokens`` tokens of the rendered prompt."""
    system = "You are the perception assistant of a robot. Answer briefly."
    messages = [{"role": "system", "content": [{"type": "text", "text": system}]}]
    turn = 0
    while _rendered_tokens(processor, messages) < context_tokens:
        question = f"({0.5 * (turn + 1):.1f} s ago) {QUESTION}"
        messages.append({"role": "user", "content": [{"type": "text", "text": question}]})
        messages.append(
            {"role": "assistant", "content": [{"type": "text", "text": ANSWERS[turn % len(ANSWERS)]}]}
        )
        turn += 1
    return messages


def _rendered_tokens(processor: Any, messages: list[dict]) -> int:
    text = processor.apply_chat_template(messages, tokenize=False)
    return len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])


def current_turn(n_images: int) -> dict:
    return {
        "role": "user",
        "content": [*([{"type": "image"}] * n_images), {"type": "text", "text": QUESTION}],
    }


def time_variants(
    variants: dict[str, tuple[Any, list[dict], Sequence[list[np.ndarray]]]],
    warmup: int,
    max_new_tokens: int,
) -> dict[str, tuple[list[float], Any]]:
    """Per-frame generate seconds of each variant (backend, history, views) and its last Generation.

    Variants take turns frame by frame (in rotating order), so load changes on a shared machine hit
    them alike; the first ``warmup`` frames are not timed.
    """
    names = list(variants)
    out: dict[str, tuple[list[float], Any]] = {name: ([], None) for name in names}
    frames = min(len(views) for _, _, views in variants.values())
    for index in range(frames):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            backend, history, views = variants[name]
            images = views[index]
            result = backend.generate(
                [*history, current_turn(len(images))], images, max_new_tokens=max_new_tokens
            )
            seconds = out[name][0]
            if index >= warmup:
                seconds.append(result.seconds)
            out[name] = (seconds, result)
    return out


def paired_ratio(slow: Sequence[float], fast: Sequence[float]) -> float:
    """Median over frames of ``slow[i] / fast[i]``: both ran back to back on the same frame."""
    return statistics.median(a / b for a, b in zip(slow, fast, strict=True))


def percentile_ms(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values) * 1000.0, q)), 2)


def run_suite(
    reuse: Any, plain: Any, args: argparse.Namespace, contexts: Sequence[int], frames: int, label: str
) -> dict[str, float]:
    """Full frame vs focus view, each with and without prefix reuse, at each context size.

    Figures are keyed ``{label}context{N}_{view}_{mode}_p50_ms`` etc.; the ratios of the largest context
    are repeated without the context prefix (``{label}prefix_reuse_speedup_ratio`` is the focus view's:
    the view the edge runs when it has context).
    """
    width, height = args.frame_size
    shots = [synthetic_frame(width, height, seed) for seed in range(frames + args.warmup)]
    views = {
        "full": [[image] for image, _ in shots],
        "focus": [focus_images(image, boxes, args.full_size, args.crop_size) for image, boxes in shots],
    }
    figures: dict[str, float] = {}
    for context in contexts:
        history = history_messages(reuse.processor, context)
        timed = time_variants(
            {
                f"{view}_{mode}": (backend, history, views[view])
                for view in views
                for mode, backend in (("reuse", reuse), ("no_reuse", plain))
            },
            args.warmup,
            args.max_new_tokens,
        )
        key = f"{label}context{context}_"
        seconds = {name: values for name, (values, _) in timed.items()}
        for name, values in seconds.items():
            figures[f"{key}{name}_p50_ms"] = percentile_ms(values, 50)
            figures[f"{key}{name}_p95_ms"] = percentile_ms(values, 95)
        full, focus = timed["full_reuse"][1], timed["focus_reuse"][1]
        ratios = {
            "prefix_reuse_speedup_ratio": paired_ratio(seconds["focus_no_reuse"], seconds["focus_reuse"]),
            "full_frame_prefix_reuse_speedup_ratio": paired_ratio(
                seconds["full_no_reuse"], seconds["full_reuse"]
            ),
            "focus_visual_token_ratio": full.image_tokens / focus.image_tokens,
            "focus_speedup_ratio": paired_ratio(seconds["full_reuse"], seconds["focus_reuse"]),
            "focus_speedup_no_reuse_ratio": paired_ratio(seconds["full_no_reuse"], seconds["focus_no_reuse"]),
        }
        figures[key + "cached_prefix_tokens"] = focus.cached_prefix_tokens
        figures[key + "full_visual_tokens"] = full.image_tokens
        figures[key + "focus_visual_tokens"] = focus.image_tokens
        figures.update({key + name: round(value, 3) for name, value in ratios.items()})
        print(
            f"{label or 'tiny_'}context {context} ({focus.cached_prefix_tokens} prompt tokens reusable), "
            f"frame {width}x{height}: full {full.image_tokens} visual tokens, focus "
            f"({args.full_size} px view + {len(views['focus'][0]) - 1} crops of {args.crop_size} px) "
            f"{focus.image_tokens}"
        )
        for name in timed:
            p50_ms, p95_ms = figures[f"{key}{name}_p50_ms"], figures[f"{key}{name}_p95_ms"]
            print(f"  {name:16s} p50 {p50_ms:9.2f} ms  p95 {p95_ms:9.2f} ms")
        print("  " + ", ".join(f"{name} {value:.2f}" for name, value in ratios.items()))
    last = f"{label}context{contexts[-1]}_"
    for name in (
        "prefix_reuse_speedup_ratio",
        "full_frame_prefix_reuse_speedup_ratio",
        "focus_visual_token_ratio",
        "focus_speedup_ratio",
    ):
        figures[label + name] = figures[last + name]
    return figures


class _Recording:
    """A backend whose Generations are kept (the edge runtime reports answers, not cache hits)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name = backend.name
        self.generations: list[Any] = []

    def generate(self, messages: Any, images: Any, **kwargs: Any) -> Any:
        generation = self.backend.generate(messages, images, **kwargs)
        self.generations.append(generation)
        return generation

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def image_tokens(self, width: int, height: int) -> int:
        return self.backend.image_tokens(width, height)


def pipeline_figures(reuse: Any, plain: Any, args: argparse.Namespace) -> dict[str, float]:
    """Prefix hits and per-frame generate time in the edge pipeline, with and without reuse."""
    from ..core.config import load_config
    from ..core.context_store import ContextStore
    from ..core.types import Frame, LvlmResult, s_to_ns
    from ..runtime.edge import EdgeRuntime

    config = load_config(None, {"edge.max_new_tokens": args.max_new_tokens, "prompt": QUESTION})
    store = ContextStore.from_config(config.context)
    for index, answer in enumerate(ANSWERS):
        store.add(LvlmResult(f"keyframe-{index}", s_to_ns(0.5 * index), config.task, QUESTION, answer))
    width, height = args.frame_size
    images = [synthetic_frame(width, height, seed)[0] for seed in range(args.frames + args.warmup)]
    runs = {name: _Recording(backend) for name, backend in (("reuse", reuse), ("no_reuse", plain))}
    runtimes = {name: EdgeRuntime(backend, config, store) for name, backend in runs.items()}
    names = list(runtimes)
    for index, image in enumerate(images):
        frame = Frame(s_to_ns(1.0 + 0.1 * index), image, seq=index)
        for name in names[index % 2 :] + names[: index % 2]:  # take turns: load hits both alike
            runtimes[name].observe(frame)
            runtimes[name].answer(frame)
    seconds = {name: [g.seconds for g in run.generations[args.warmup :]] for name, run in runs.items()}
    hits = [g.cached_prefix_tokens for g in runs["reuse"].generations[1:]]
    same = all(
        a.text == b.text for a, b in zip(runs["reuse"].generations, runs["no_reuse"].generations, strict=True)
    )
    figures = {
        "pipeline_prefix_hit_fraction": round(sum(h > 0 for h in hits) / len(hits), 3) if hits else 0.0,
        "pipeline_cached_prefix_tokens_mean": round(sum(hits) / len(hits), 1) if hits else 0.0,
        "pipeline_prompt_tokens_mean": round(
            statistics.mean(g.prompt_tokens for g in runs["reuse"].generations), 1
        ),
        "pipeline_reuse_p50_ms": percentile_ms(seconds["reuse"], 50),
        "pipeline_no_reuse_p50_ms": percentile_ms(seconds["no_reuse"], 50),
        "pipeline_prefix_reuse_speedup_ratio": round(paired_ratio(seconds["no_reuse"], seconds["reuse"]), 3),
        "pipeline_same_answers": same,
    }
    hit, cached = figures["pipeline_prefix_hit_fraction"], figures["pipeline_cached_prefix_tokens_mean"]
    print(
        f"pipeline (edge runtime, {len(ANSWERS)} keyframe answers as context): prefix from the cache on "
        f"{hit:.0%} of frames after the first, {cached:.0f} of "
        f"{figures['pipeline_prompt_tokens_mean']:.0f} prompt tokens on average; generate p50 "
        f"{figures['pipeline_reuse_p50_ms']:.1f} ms with reuse, {figures['pipeline_no_reuse_p50_ms']:.1f} ms "
        f"without ({figures['pipeline_prefix_reuse_speedup_ratio']:.2f}x); same answers: {same}"
    )
    return figures


def tiny_backends(args: argparse.Namespace) -> tuple[Any, Any]:
    """The tiny Qwen2.5-VL model on CPU behind two backends: with and without prefix reuse."""
    from transformers import AutoModelForImageTextToText

    from ..models.qwen_processor import load_processor
    from ..models.tiny import cached_tiny_model

    path = str(cached_tiny_model("qwen2_5_vl"))
    model = AutoModelForImageTextToText.from_pretrained(path)
    return _backend_pair(model, load_processor(path, "qwen2_5_vl"), max(args.frame_size), "tiny:qwen2_5_vl")


def _backend_pair(model: Any, processor: Any, max_side: int, name: str) -> tuple[Any, Any]:
    from ..models.hf_local import HfLocalBackend

    model.generation_config.eos_token_id = None  # fixed answer length: every variant decodes as much
    common = {"image_max_side": max_side, "max_new_tokens": 8}
    return (
        HfLocalBackend.from_parts(model, processor, name=name, prefix_cache=True, **common),
        HfLocalBackend.from_parts(model, processor, name=name, prefix_cache=False, **common),
    )


def real_size_figures(args: argparse.Namespace, device: str = "cuda") -> dict[str, float]:
    """The suite on random-weight Qwen2.5-VL of each of ``args.real_sizes`` in bf16 on ``device``."""
    import torch

    from ..models.reference import build_random_reference, reference_processor

    figures: dict[str, float] = {}
    for size in args.real_sizes:
        model = build_random_reference(size, device, torch.bfloat16)
        reuse, plain = _backend_pair(model, reference_processor(), max(args.frame_size), f"random:{size}")
        figures.update(
            run_suite(reuse, plain, args, [args.contexts[-1]], args.real_frames, f"qwen2_5_vl_{size}_")
        )
        reuse.close()
        plain.close()
        del model, reuse, plain
        gc.collect()
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    return figures


def family_token_figures(args: argparse.Namespace) -> dict[str, float]:
    """Full frame vs focus view visual tokens of every family in the table (published resize rules)."""
    from ..core.focus.tokens import visual_tokens
    from ..models.families import FAMILIES

    width, height = args.frame_size
    image, boxes = synthetic_frame(width, height, seed=0)
    views = focus_images(image, boxes, args.full_size, args.crop_size)
    figures: dict[str, float] = {}
    print(f"visual tokens per family, frame {width}x{height} vs focus ({len(views)} images):")
    for family in FAMILIES:
        full = visual_tokens(width, height, spec=family.tokens)
        focus = sum(visual_tokens(v.shape[1], v.shape[0], spec=family.tokens) for v in views)
        key = f"family_{family.name}_"
        figures[key + "full_visual_tokens"] = full
        figures[key + "focus_visual_tokens"] = focus
        figures[key + "focus_visual_token_ratio"] = round(full / focus, 3)
        print(f"  {family.title:20s} full {full:5d}  focus {focus:5d}  ratio {full / focus:5.2f}")
    return figures


def family_reuse_figures(args: argparse.Namespace) -> dict[str, float]:
    """Prefix reuse speedup on the tiny model of each family (focus view, 256 context tokens)."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    from ..models.qwen_processor import load_processor
    from ..models.tiny import TINY_FAMILIES, cached_tiny_model

    width, height = args.frame_size
    shots = [synthetic_frame(width, height, seed) for seed in range(args.family_frames + 1)]
    views = [focus_images(image, boxes, args.full_size, args.crop_size) for image, boxes in shots]
    figures: dict[str, float] = {}
    print(f"prefix reuse per tiny family ({args.family_frames} frames, focus view, 256 context tokens):")
    for name in TINY_FAMILIES:
        path = str(cached_tiny_model(name))
        model_type = str(AutoConfig.from_pretrained(path).model_type)
        model = AutoModelForImageTextToText.from_pretrained(path)
        reuse, plain = _backend_pair(
            model, load_processor(path, model_type), max(width, height), f"tiny:{name}"
        )
        key = f"family_{name}_"
        history = history_messages(reuse.processor, 256)
        timed = time_variants({"reuse": (reuse, history, views), "plain": (plain, history, views)}, 1, 4)
        ratio = paired_ratio(timed["plain"][0], timed["reuse"][0])
        figures[key + "prefix_reuse_snapshot"] = reuse.prefix_reuse_mode == "snapshot"
        figures[key + "prefix_reuse_speedup_ratio"] = round(ratio, 3)
        cached = timed["reuse"][1].cached_prefix_tokens
        print(f"  {name:14s} {reuse.prefix_reuse_mode:8s} speedup {ratio:.2f} ({cached} tokens reused)")
        reuse.close()
        plain.close()
        del model
        gc.collect()
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spotvlm bench models", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (fixed for comparability)")
    parser.add_argument("--frames", type=int, default=8, help="timed frames per variant (tiny model)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames before each variant")
    parser.add_argument("--max-new-tokens", type=int, default=8, help="answer length in tokens")
    parser.add_argument("--frame-size", type=parse_size, default=(640, 480), help="camera frame WxH")
    parser.add_argument("--contexts", default="256,1024", help="context sizes in tokens, comma separated")
    parser.add_argument("--full-size", type=int, default=224, help="focus: longest side of the full view")
    parser.add_argument("--crop-size", type=int, default=224, help="focus: side of each region crop")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="cuda: real sizes too"
    )
    parser.add_argument("--real-sizes", default="3b,7b", help="Qwen2.5-VL sizes benchmarked on the GPU")
    parser.add_argument("--real-frames", type=int, default=20, help="timed frames per variant (GPU)")
    parser.add_argument(
        "--family-frames", type=int, default=4, help="timed frames per tiny family; 0 = token figures only"
    )
    parser.add_argument(
        "--record", type=Path, default=None, help="append the figures, date and device to this markdown file"
    )
    argv = list(argv) if argv is not None else sys.argv[1:]
    args = parser.parse_args(argv)
    args.contexts = sorted(int(c) for c in args.contexts.split(","))
    args.real_sizes = [s.strip() for s in args.real_sizes.split(",") if s.strip()]

    import torch

    torch.set_num_threads(args.threads)
    use_gpu = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if use_gpu and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    start = time.perf_counter()
    reuse, plain = tiny_backends(args)
    figures = run_suite(reuse, plain, args, args.contexts, args.frames, "")
    figures.update(pipeline_figures(reuse, plain, args))
    figures.update(family_token_figures(args))
    if args.family_frames > 0:
        figures.update(family_reuse_figures(args))
    figures["threads"] = args.threads
    figures["gpu"] = use_gpu
    if use_gpu:
        figures.update(real_size_figures(args))
    print(f"done in {time.perf_counter() - start:.1f} s")
    if args.record is not None:
        from .record import append_record, describe_device, record_section

        append_record(
            args.record, record_section("models", argv, describe_device(use_gpu, args.threads), figures)
        )
        print(f"recorded in {args.record}")
    print(bench_line("models", figures))
    return 0
