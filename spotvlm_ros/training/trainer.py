"""The training loop of ``spotvlm train-demo``: curriculum batches, AdamW with warmup and cosine decay.

The budget is ``steps`` optimiser steps and, optionally, ``minutes`` of training time; progress (what
the curriculum stage and the learning rate follow) is the larger of the two fractions spent, so a run
cut short by time still goes through every stage. Loss is on answer tokens only. Every
``eval_every_steps`` (and at the end) the model answers the held-out set through
:class:`~spotvlm_ros.models.hf_local.HfLocalBackend`; checkpoints are written every
``checkpoint_every_s`` seconds and at the end, and ``resume`` continues a run from its last one. The
trained model is exported with ``save_pretrained`` (safetensors) beside its processor, tokenizer,
``training_info.json`` and the training log.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.hf_local import HfLocalBackend
from .checkpoint import (
    LOG_CSV,
    RunState,
    TrainLog,
    generator_state,
    has_checkpoint,
    load_checkpoint,
    restore_generator,
    save_checkpoint,
)
from .data import Processors, TrainingData, load_or_build
from .encoding import IGNORE_INDEX, collate
from .evaluate import class_prior, evaluate
from .export import INFO_FILE, read_training_info, write_training_info
from .modeling import build_model, build_processor, load_model_dir, save_model_dir
from .phases import combined_log
from .recipe import TrainRecipe, recipe_for
from .scenario import scenario_config
from .vocab import train_demo_tokenizer

Log = Callable[[str], None]


class TrainError(ValueError):
    """A run cannot start as asked (existing run without --resume, nothing to resume, bad budget)."""


@dataclass
class TrainOptions:
    """One ``train-demo`` invocation."""

    role: str
    out_dir: Path
    steps: int = 0  # 0: the recipe's
    minutes: float = 0.0  # 0: no time limit
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    resume: bool = False
    export_dir: Path | None = None
    micro: bool = False  # the tiny test recipe
    eval_every_steps: int = -1  # -1: the recipe's; 0: only at the end
    curriculum: str = "staged"  # staged | answers (see recipe.py)
    init_from: Path | None = None  # an exported model whose weights a new run starts from
    command: str = ""


@dataclass
class TrainResult:
    """What a run did and where its model is."""

    steps: int
    elapsed_s: float
    export_dir: Path
    accuracy: dict[str, float]
    prior: dict[str, float]
    losses: list[float] = field(default_factory=list)


def learning_rate(recipe: TrainRecipe, step: int, progress: float) -> float:
    """Linear warmup over ``warmup_steps``, then cosine decay with progress to ``min_lr_fraction``."""
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return recipe.lr * (recipe.min_lr_fraction + (1.0 - recipe.min_lr_fraction) * cosine)


def question(group: str) -> str:
    """The question of a sample group: ``vqa:light+regions`` and ``vqa:light@spotvlm`` -> ``vqa:light``."""
    return group.split("@", 1)[0].split("+", 1)[0]


def family(group: str) -> str:
    """The family of a sample group: ``vqa:light+regions`` -> ``vqa``, ``crop:light`` -> ``crop``."""
    return question(group).split(":", 1)[0]


class CurriculumSampler:
    """Draws training batches following the curriculum.

    Per sample: a kind by the current stage's mix, then a question within that kind by the stage's
    weights (a question's own weight, else its family's shared by the family's questions), then a
    sample of that question.
    """

    def __init__(self, data: TrainingData, rng: np.random.Generator):
        self.rng = rng
        self.pools: dict[str, dict[str, list[int]]] = {}
        for index, item in enumerate(data.items):
            self.pools.setdefault(item.kind, {}).setdefault(question(item.group), []).append(index)

    def batch(self, mix: dict[str, float], size: int, weights: dict[str, float]) -> list[int]:
        kinds = [k for k, w in mix.items() if w > 0 and self.pools.get(k)]
        if not kinds:
            raise TrainError(f"no training samples of the kinds {sorted(mix)}")
        out = []
        for kind in self._draw(kinds, [mix[k] for k in kinds], size):
            names, chances = self._question_weights(kind, weights)
            (name,) = self._draw(names, chances, 1)
            pool = self.pools[kind][name]
            out.append(pool[int(self.rng.integers(len(pool)))])
        return out

    def _question_weights(self, kind: str, weights: dict[str, float]) -> tuple[list[str], list[float]]:
        names = sorted(self.pools[kind])
        per_family: dict[str, int] = {}
        for name in names:
            per_family[family(name)] = per_family.get(family(name), 0) + 1
        chances = [
            weights[name] if name in weights else weights.get(family(name), 0.0) / per_family[family(name)]
            for name in names
        ]
        if sum(chances) <= 0:
            raise TrainError(f"the weights {weights} draw nothing from the {kind!r} samples {names}")
        return names, chances

    def _draw(self, names: list[str], weights: list[float], size: int) -> list[str]:
        p = np.asarray(weights, dtype=float)
        return [names[int(i)] for i in self.rng.choice(len(names), size=size, p=p / p.sum())]


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the answer tokens, averaged per sample, then over the batch.

    Every sample weighs the same whether its answer is one word or a box list of 25 tokens.
    """
    target = labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2).float(), target, ignore_index=IGNORE_INDEX, reduction="none"
    )
    mask = target != IGNORE_INDEX
    per_sample = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return per_sample[mask.any(dim=1)].mean()


def _optimizer(model: Any, recipe: TrainRecipe) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    plain = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=(0.9, 0.98))


def _backend(model: Any, processor: Any, recipe: TrainRecipe, image_max_side: int) -> HfLocalBackend:
    return HfLocalBackend.from_parts(
        model,
        processor,
        name=f"training:{recipe.role}",
        max_new_tokens=recipe.max_new_tokens,
        image_max_side=image_max_side,
        prefix_cache=False,
    )


class Trainer:
    """One run: data, model, optimiser, log; :meth:`run` trains until the budget is spent."""

    def __init__(self, options: TrainOptions, log: Log = print):
        self.options = options
        self.say = log
        recipe = recipe_for(
            options.role, seed=options.seed, micro=options.micro, curriculum=options.curriculum
        )
        if options.steps:
            recipe = replace(recipe, steps=options.steps)
        if options.eval_every_steps >= 0:
            recipe = replace(recipe, eval_every_steps=options.eval_every_steps)
        if recipe.steps < 1 or options.minutes < 0:
            raise TrainError("--steps must be >= 1 and --minutes >= 0")
        self.recipe = recipe
        self.run_dir = Path(options.out_dir)
        if has_checkpoint(self.run_dir) and not options.resume:
            raise TrainError(
                f"{self.run_dir} holds a run already: pass --resume to continue it, or a new --out"
            )
        if options.resume and not has_checkpoint(self.run_dir):
            raise TrainError(f"nothing to resume in {self.run_dir} (no checkpoint.pt)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(options.device)
        tokenizer = train_demo_tokenizer()
        self.processor = build_processor(recipe.model, tokenizer)
        lvlm_spec = recipe_for("lvlm", micro=options.micro).model
        self.config = scenario_config()
        processors = Processors(self.processor, build_processor(lvlm_spec, tokenizer))
        self.data = load_or_build(self.run_dir / "data", recipe, self.config, processors, self.say)
        self.say(f"data: {self.data.summary()}")
        self.model = build_model(recipe.model, tokenizer, recipe.seed).to(self.device)
        if options.init_from is not None and not options.resume:
            self._load_initial_weights(Path(options.init_from))
        self.optimizer = _optimizer(self.model, recipe)
        self.state = RunState()
        rng = np.random.default_rng(np.random.SeedSequence([recipe.seed, 11]))
        groups = sorted({s.group for s in self.data.heldout})
        self.log = TrainLog(self.run_dir, groups)
        if options.resume:
            self.state = load_checkpoint(self.run_dir, self.model, self.optimizer)
            rng = restore_generator(self.state.sampler_state)
            self.log.resume(self.state.step)
            self.say(f"resumed at step {self.state.step} ({self.state.elapsed_s / 60:.1f} min trained)")
        else:
            self.log.resume(0)
        self.sampler = CurriculumSampler(self.data, rng)
        self.prior = class_prior(self.data.heldout)
        self.image_max_side = (
            self.config.cloud.image_max_side if recipe.role == "lvlm" else self.config.edge.image_max_side
        )

    def _load_initial_weights(self, model_dir: Path) -> None:
        """Start from the weights of an exported model of the same architecture (a second phase)."""
        if not (model_dir / "model.safetensors").is_file():
            raise TrainError(f"--init-from {model_dir}: no model.safetensors (an exported model dir)")
        state = load_model_dir(model_dir)[0].state_dict()
        expected = self.model.state_dict()
        mismatched = sorted(k for k, v in state.items() if k not in expected or expected[k].shape != v.shape)
        if mismatched or len(state) != len(expected):
            raise TrainError(
                f"--init-from {model_dir}: not a {self.recipe.role} of this recipe's architecture "
                f"({len(mismatched)} mismatched tensors, {len(state)} vs {len(expected)})"
            )
        self.model.load_state_dict(state)
        self.say(f"initialised from {model_dir}")

    def progress(self) -> float:
        by_steps = self.state.step / self.recipe.steps
        minutes = self.options.minutes
        by_time = self.state.elapsed_s / (minutes * 60.0) if minutes > 0 else 0.0
        return max(by_steps, by_time)

    def evaluate(self) -> dict[str, float]:
        """Held-out accuracy per group now (the model is put back in training mode after)."""
        started = time.perf_counter()
        backend = _backend(self.model, self.processor, self.recipe, self.image_max_side)
        try:
            accuracy = evaluate(backend, self.data.heldout, self.recipe.max_new_tokens)
        finally:
            self.model.train()
        stage = self.recipe.stage_at(min(self.progress(), 1.0)).name
        self.log.add(
            {
                "event": "eval",
                "step": self.state.step,
                "elapsed_s": round(self.state.elapsed_s, 1),
                "stage": stage,
                "accuracy": accuracy,
                "eval_s": round(time.perf_counter() - started, 1),
            }
        )
        shown = ", ".join(f"{g} {a:.2f}" for g, a in accuracy.items())
        self.say(f"eval step {self.state.step}: {shown}")
        return accuracy

    def train_step(self, indices: list[int]) -> float:
        """One optimiser step on the items ``indices``; returns the loss."""
        batch = collate([self.data.items[i] for i in indices], self.data.store, self.processor)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        lr = learning_rate(self.recipe, self.state.step, self.progress())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        labels = batch.pop("labels")
        loss = answer_loss(self.model(**batch).logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
        self.optimizer.step()
        self.state.step += 1
        return float(loss.detach())

    def checkpoint(self) -> None:
        self.state.sampler_state = generator_state(self.sampler.rng)
        save_checkpoint(self.run_dir, self.model, self.optimizer, self.state)

    def run(self) -> TrainResult:
        """Train until the budget is spent, evaluate, checkpoint and export."""
        recipe, options = self.recipe, self.options
        if self.state.step == 0:
            self.log.add({"event": "prior", "step": 0, "accuracy": self.prior})
            self.say(f"class prior per held-out group: {self.prior}")
        self.model.train()
        losses: list[float] = []
        window: list[float] = []
        last_checkpoint = time.monotonic()
        while self.progress() < 1.0:
            stage = recipe.stage_at(self.progress())
            started = time.perf_counter()
            loss = self.train_step(self.sampler.batch(stage.mix, recipe.batch_size, recipe.weights_at(stage)))
            spent = time.perf_counter() - started
            self.state.elapsed_s += spent
            losses.append(loss)
            window.append(loss)
            if recipe.log_every_steps and self.state.step % recipe.log_every_steps == 0:
                record = {
                    "event": "step",
                    "step": self.state.step,
                    "elapsed_s": round(self.state.elapsed_s, 1),
                    "stage": stage.name,
                    "loss": round(float(np.mean(window)), 5),
                    "lr": round(learning_rate(recipe, self.state.step, self.progress()), 7),
                    "samples_per_s": round(recipe.batch_size / max(spent, 1e-9), 2),
                }
                self.log.add(record)
                self.say(
                    f"step {record['step']} [{stage.name}] loss {record['loss']:.4f} lr {record['lr']:.2e} "
                    f"{self.state.elapsed_s / 60:.1f} min"
                )
                window = []
            if recipe.eval_every_steps and self.state.step % recipe.eval_every_steps == 0:
                self.evaluate()
            if time.monotonic() - last_checkpoint >= recipe.checkpoint_every_s:
                self.checkpoint()
                last_checkpoint = time.monotonic()
        evals = self.log.evals()
        if evals and evals[-1]["step"] == self.state.step:
            accuracy = evals[-1]["accuracy"]
        else:
            accuracy = self.evaluate()
        self.checkpoint()
        export_dir = Path(options.export_dir) if options.export_dir else self.run_dir / "model"
        self.export(export_dir, accuracy)
        return TrainResult(self.state.step, self.state.elapsed_s, export_dir, accuracy, self.prior, losses)

    def export(self, export_dir: Path, accuracy: dict[str, float]) -> Path:
        """Save the model for ``from_pretrained`` with its processor, training info and log."""
        earlier = self._earlier_phases()
        init = Path(self.options.init_from) if earlier else None
        log = combined_log(init, len(earlier), (self.run_dir / LOG_CSV).read_text())
        save_model_dir(self.model, self.processor, export_dir)
        (export_dir / LOG_CSV).write_text(log)
        for folded in export_dir.glob("phase*_train_log.*"):  # older exports' per-phase logs, now in LOG_CSV
            folded.unlink()
        write_training_info(
            export_dir,
            recipe=self.recipe,
            options=self.options,
            steps=self.state.step,
            elapsed_s=self.state.elapsed_s,
            accuracy=accuracy,
            prior=self.prior,
            data_summary=self.data.summary(),
            config=self.config,
            earlier_phases=earlier,
        )
        self.say(f"exported the model to {export_dir}")
        return export_dir

    def _earlier_phases(self) -> list[dict]:
        """The training info of the phases before this one (``--init-from``), oldest first."""
        init = self.options.init_from
        if init is None or not (Path(init) / INFO_FILE).is_file():
            return []
        info = read_training_info(Path(init))
        info.pop("phases", None)
        return [*info.pop("earlier_phases", []), info]


def train(options: TrainOptions, log: Log = print) -> TrainResult:
    """Set torch threads, then build and run a :class:`Trainer`."""
    if options.threads < 1:
        raise TrainError(f"--threads must be >= 1, got {options.threads}")
    torch.set_num_threads(options.threads)
    if options.device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError(f"--device {options.device}: CUDA is not available here")
    return Trainer(options, log).run()
