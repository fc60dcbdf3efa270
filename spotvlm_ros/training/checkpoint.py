"""Run state on disk: resumable checkpoints and the training log (JSONL, with a CSV view).

``RUN/checkpoint.pt`` holds the model and optimiser state, the step, the training seconds spent so far and
every random generator state, written atomically (temporary file, then rename). ``RUN/train_log.jsonl``
has one record per logged step (``event: step``: loss, lr, stage) and per evaluation (``event: eval``:
accuracy per held-out group); ``RUN/train_log.csv`` is the same as a table, one column per group.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT = "checkpoint.pt"
LOG_JSONL = "train_log.jsonl"
LOG_CSV = "train_log.csv"
CSV_FIELDS = ("event", "step", "elapsed_s", "stage", "loss", "lr", "samples_per_s")


@dataclass
class RunState:
    """Where a run stands: optimiser step, training seconds spent, batch sampler state."""

    step: int = 0
    elapsed_s: float = 0.0
    sampler_state: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(run_dir: Path, model: Any, optimizer: torch.optim.Optimizer, state: RunState) -> Path:
    """Write the checkpoint atomically."""
    path = run_dir / CHECKPOINT
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": state.step,
            "elapsed_s": state.elapsed_s,
            "sampler_state": state.sampler_state,
            "torch_rng": torch.get_rng_state(),
        },
        tmp,
    )
    os.replace(tmp, path)
    return path


def load_checkpoint(run_dir: Path, model: Any, optimizer: torch.optim.Optimizer) -> RunState:
    """Restore model, optimiser and random state; the run state to continue from."""
    data = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)
    model.load_state_dict(data["model"])
    optimizer.load_state_dict(data["optimizer"])
    torch.set_rng_state(data["torch_rng"])
    return RunState(int(data["step"]), float(data["elapsed_s"]), dict(data["sampler_state"]))


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINT).is_file()


class TrainLog:
    """Appends records to the JSONL log and rewrites the CSV view with one column per group."""

    def __init__(self, run_dir: Path, groups: list[str]):
        self.jsonl = run_dir / LOG_JSONL
        self.csv = run_dir / LOG_CSV
        self.groups = groups
        self.records: list[dict[str, Any]] = []

    def resume(self, step: int) -> None:
        """Keep the records up to ``step`` (a crashed run may have logged past its last checkpoint)."""
        if self.jsonl.is_file():
            lines = self.jsonl.read_text().splitlines()
            self.records = [
                r for r in (json.loads(line) for line in lines if line) if r.get("step", 0) <= step
            ]
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in self.records))
        self._write_csv()

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        with self.jsonl.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        self._write_csv()

    def evals(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("event") == "eval"]

    def _write_csv(self) -> None:
        fields = [*CSV_FIELDS, *(f"acc:{g}" for g in self.groups)]
        with self.csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            for record in self.records:
                row = {k: record.get(k, "") for k in CSV_FIELDS}
                for group, value in record.get("accuracy", {}).items():
                    row[f"acc:{group}"] = round(value, 4)
                writer.writerow(row)


def generator_state(rng: np.random.Generator) -> dict[str, Any]:
    return dict(rng.bit_generator.state)


def restore_generator(state: dict[str, Any]) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng
