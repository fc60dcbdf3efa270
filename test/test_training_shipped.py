"""The shipped demo checkpoints reproduce the accuracy recorded when they were trained.

Skipped (counted) while ``spotvlm_ros/demo_models/{lvlm,svlm}`` are not shipped. The models are loaded
through the normal backend (``create_backend``, backend ``hf``) and asked the held-out prompts the way
the runtime asks them (the SVLM's through Context Replacement and Visual Focus).

The training-time held-out set is generated afresh from the recorded seed and data recipe (renderer,
JPEG round trip, runtime prompts) and must give the accuracy recorded in ``training_info.json``: greedy
decoding on the same inputs, so only a rare tie may flip (a small tolerance). A change to the world, the
prompts, the processor or the weights shows here. The accuracy targets on unseen clips are a
benchmark (``spotvlm bench targets``), not a test.
"""

from __future__ import annotations

import math

import pytest
import torch

from spotvlm_ros.training.export import prompt_fingerprint, read_training_info
from spotvlm_ros.training.scenario import demo_model_dir, demo_models_present, scenario_config
from spotvlm_ros.training.targets import model_accuracy, recorded_sets

pytestmark = pytest.mark.skipif(not demo_models_present(), reason="demo models not shipped yet")
REPRODUCTION_TOLERANCE = 0.05  # two samples in 40 may flip on a tie


@pytest.fixture(scope="module")
def recorded_heldout():
    torch.set_num_threads(1)
    return recorded_sets({role: demo_model_dir(role) for role in ("lvlm", "svlm")}, scenario_config())


@pytest.mark.parametrize("role", ["lvlm", "svlm"])
def test_shipped_model_reproduces_its_recorded_accuracy(role, recorded_heldout):
    info = read_training_info(demo_model_dir(role))
    assert info["role"] == role
    if role == "svlm":
        assert info["prompt_fingerprint"] == prompt_fingerprint(scenario_config()), (
            "the SVLM prompt format changed since the SVLM was trained: retrain it (spotvlm train-demo)"
        )
    accuracy = model_accuracy(demo_model_dir(role), role, recorded_heldout[role], scenario_config())
    recorded = info["heldout_accuracy"]
    assert set(accuracy) == set(recorded)
    for group, value in recorded.items():
        if not math.isnan(value):
            difference = abs(accuracy[group] - value)
            assert difference <= REPRODUCTION_TOLERANCE + 1e-9, (group, accuracy[group], value)
