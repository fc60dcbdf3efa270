"""``training_info.json`` beside an exported model: recipe, seed, budget, accuracy, prompt format.

The prompt fingerprint is a hash of the messages Context Replacement builds for a fixed scene (an LVLM
keyframe answer and two of the SVLM's own answers). The SVLM learned that format; when the fingerprint
of the code in hand differs from the one recorded at training time, the SVLM meets prompts it was not
trained on and should be retrained (the shipped-model test says so).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import transformers

from ..core.config import SpotVlmConfig
from ..core.context_store import ContextStore
from ..core.prompt import ContextReplacement
from ..core.types import NS_PER_S, LvlmResult
from .phases import phase_summaries, portable_command, portable_path
from .scenario import SCENARIO_SETTINGS

if TYPE_CHECKING:
    from .recipe import TrainRecipe
    from .trainer import TrainOptions

INFO_FILE = "training_info.json"
_T0 = 1_700_000_000 * NS_PER_S


def prompt_fingerprint(config: SpotVlmConfig) -> str:
    """Hash of the SVLM messages for a fixed scene under ``config``'s context settings."""
    prompt = "What is the state of the traffic light?"
    store = ContextStore.from_config(config.context)
    store.add(LvlmResult("fingerprint-1", _T0, "vqa", prompt, "red", image_size=(320, 240)))
    replacement = ContextReplacement(config.context, config.system_prompt, lambda text: len(text.split()))
    for offset_s, answer in ((0.3, "red"), (0.6, "green")):
        replacement.record_answer(_T0 + round(offset_s * NS_PER_S), "vqa", prompt, answer)
    plan = replacement.build(_T0 + 2 * NS_PER_S, "vqa", prompt, store, 2, focus_note="Image 1 is the view.")
    return hashlib.sha256(json.dumps(plan.messages, sort_keys=True).encode()).hexdigest()[:16]


def write_training_info(
    export_dir: Path,
    *,
    recipe: TrainRecipe,
    options: TrainOptions,
    steps: int,
    elapsed_s: float,
    accuracy: dict[str, float],
    prior: dict[str, float],
    data_summary: dict[str, Any],
    config: SpotVlmConfig,
    earlier_phases: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``training_info.json`` into ``export_dir``.

    ``earlier_phases``: the info of the runs this one started from (``--init-from``), oldest first;
    ``steps`` and ``training_minutes`` here count this phase only, ``total`` all of them, and ``phases``
    summarises every phase (:mod:`.phases`). Paths in the command are recorded relative.
    """
    phases = earlier_phases or []
    info = {
        "role": recipe.role,
        "seed": recipe.seed,
        "command": portable_command(options.command),
        "steps": steps,
        "training_minutes": round(elapsed_s / 60.0, 2),
        "curriculum": options.curriculum,
        "init_from": portable_path(str(options.init_from)) if options.init_from else None,
        "earlier_phases": phases,
        "total": {
            "steps": steps + sum(int(p.get("steps", 0)) for p in phases),
            "training_minutes": round(
                elapsed_s / 60.0 + sum(float(p.get("training_minutes", 0.0)) for p in phases), 2
            ),
        },
        "budget": {"steps": recipe.steps, "minutes": options.minutes},
        "device": options.device,
        "threads": options.threads,
        "heldout_accuracy": accuracy,
        "heldout_class_prior": prior,
        "data": data_summary,
        "recipe": recipe.to_json(),
        "scenario_settings": SCENARIO_SETTINGS,
        "prompt_fingerprint": prompt_fingerprint(config),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    info["phases"] = phase_summaries(phases, info)
    path = Path(export_dir) / INFO_FILE
    path.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return path


def read_training_info(model_dir: Path) -> dict[str, Any]:
    """The ``training_info.json`` of an exported model."""
    return json.loads((Path(model_dir) / INFO_FILE).read_text())
