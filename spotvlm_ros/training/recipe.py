"""What a demo model is and how it is trained: architecture, data recipe, curriculum and optimiser.

Two recipes ship: ``lvlm`` (Qwen2.5-VL architecture, 4 vision + 4 text layers, width 128, model input
224 x 168) and ``svlm`` (2 + 2 layers, width 128, input 112 x 84). ``micro`` is a model small enough
for tests to train in seconds. Every number that shapes a run lives here and is written next to the
exported checkpoint (``training_info.json``), so a run can be repeated from its seed and recipe.

The curriculum (naive training on full frames stays on a plateau for small objects):

0. ``light``: the light's state on crops of the light only (the first visual skill to get right);
1. ``crops``: mostly crop-level questions (the traffic light and a pedestrian cut out and enlarged,
   asked the usual question), some large-object questions (how many cars) and localisation of the
   light on the full frame;
2. ``mixed``: half crop-level, half full frames of every task;
3. ``full``: full frames of every task (and, for the SVLM, runtime prompts with context turns and focus
   crops), a tenth of crop-level samples kept so nothing is forgotten.

Measured: after this curriculum the small-object VQA answers still sat at the class prior (every task
shares the batch, so a full-frame light question is about one sample in eight). A second phase,
``--curriculum answers --init-from MODEL``, starts from the first phase's model and weights the
batches towards what the benchmark asks: the VQA questions on full frames (with and without regions),
and for the SVLM the runtime prompts (context turns, focus crops); localisation, captions and crops
are kept at a lower weight so they are not forgotten.

Measured on the 640-clip LVLM data, after the second phase: with every task sharing the batch the LVLM
located the light (grounding) but its full-frame light answer stayed at the prior for 10,000 steps.
``--curriculum light`` (LVLM only) draws the full-frame light question six times as often as the other
VQA questions (stage ``lightmix``); the light answer then left the prior within 4,000 steps.
Its car count stayed at 0.65-0.78 (it never answered 3: it missed the far, small or partly hidden
car), so ``--curriculum objects`` (LVLM only) draws the car count and the pedestrian most (stage
``objects``), the light and localisation kept; the count then reached 0.90 in 15,000 steps.

Measured on the shipped SVLM of the fourth stop: it read a lone crop of the light at 0.98 but the
runtime's two-image view (small full frame, then the crop) at 0.77, and answered an agreeing fresh
context turn no better than none. Its runtime prompts were all recorded from simulated runs, where a
context about the light is often stale and a third of the crops show no light. ``--curriculum focus``
(SVLM only) draws the context prompts most, the light's most of all (stage ``focus``), and the SVLM data
adds the held-out set's two focus-crop light prompts (``light_context_stride``): the light's crop beside
the frame, with one fresh context turn that agrees or contradicts it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

ROLES = ("lvlm", "svlm")
CURRICULA = ("staged", "answers", "light", "objects", "focus", "signs")
SAMPLE_KINDS = ("crop", "full", "context")
FRAME_SIZE = (320, 240)  # width, height of the training frames (the demo bag's size)
FPS = 10.0
JPEG_QUALITY = 90  # the frames reach the models as JPEG, as from the demo bag


@dataclass(frozen=True)
class ModelSpec:
    """A tiny Qwen2.5-VL: text and vision depth and width, and the model input size of one image."""

    text_layers: int
    vision_layers: int
    hidden: int = 128
    text_intermediate: int = 384
    vision_hidden: int = 128
    vision_intermediate: int = 256
    heads: int = 4
    kv_heads: int = 2
    input_width: int = 224  # the processor resizes a 4:3 frame to this (multiples of 28)
    input_height: int = 168

    @property
    def max_pixels(self) -> int:
        """The image processor's pixel budget: exactly the input size (with rounding slack)."""
        return self.input_width * self.input_height + 2 * 28 * 28 - 1


@dataclass(frozen=True)
class Stage:
    """A curriculum stage: active until ``until`` (fraction of the budget), with sample-kind weights.

    ``weights``, when given, replace the recipe's ``family_weights`` during the stage (see there).
    """

    name: str
    until: float
    mix: dict[str, float]
    weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DataRecipe:
    """How many clips and samples of the synthetic world a run trains and is evaluated on."""

    train_clips: int = 48
    frames_per_clip: int = 600
    frame_stride: int = 6  # full-frame samples come from every n-th frame of a clip
    crop_stride: int = 12
    context_runs_per_clip: int = 3  # SVLM: simulated runtime runs per clip (random mode, item, delay)
    context_keep: float = 0.25  # SVLM: share of the simulated SVLM calls kept as samples
    lvlm_error: float = 0.15  # SVLM: LVLM-style context answers with a corrupted field
    region_drop: float = 0.0  # SVLM: share of the scripted LVLM's boxes left out (focus crops miss objects)
    # SVLM: per object id, share of the scripted LVLM's boxes put elsewhere on their row (wrong focus crops)
    region_miss: dict[str, float] = field(default_factory=dict)
    own_error: float = 0.25  # SVLM: its own earlier answers in the history that are wrong
    light_context_stride: int = 0  # SVLM: every n-th frame also gets two focus-crop light prompts (0: none)
    mean_delay_s: tuple[float, float] = (0.2, 6.0)  # SVLM: cloud delay means, log-uniform
    heldout_clips: int = 6
    heldout_per_group: int = 40
    heldout_seed_offset: int = 100_000
    speed_signs: bool = False  # clips with speed-limit signs (and the speed-limit question)
    # LVLM: every n-th frame with a posted sign wholly in view gives speed-limit samples (full frame and a
    # crop of the sign), and so does the frame repainted with each other limit (0: none)
    sign_variant_stride: int = 0
    history_lengths: tuple[int, ...] = ()  # SVLM: each simulated run's context.history_length (): config's)


@dataclass(frozen=True)
class TrainRecipe:
    """Everything that defines a training run except its budget and the machine."""

    role: str
    model: ModelSpec
    data: DataRecipe = field(default_factory=DataRecipe)
    stages: tuple[Stage, ...] = ()
    seed: int = 0
    batch_size: int = 8
    lr: float = 1.5e-3
    min_lr_fraction: float = 0.05
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    steps: int = 12_000  # default budget; --minutes may end a run earlier
    eval_every_steps: int = 1000
    checkpoint_every_s: float = 300.0
    log_every_steps: int = 25
    max_new_tokens: int = 48
    # within a sample kind, how often each family (vqa, crop, caption, grounding) is drawn, shared by its
    # questions; a question key (crop:light) gets its own weight; what is not named is not drawn
    family_weights: dict[str, float] = field(
        default_factory=lambda: {"vqa": 3.0, "crop": 3.0, "caption": 1.0, "grounding": 1.0}
    )

    def stage_at(self, progress: float) -> Stage:
        """The curriculum stage at ``progress`` (0..1 of the budget)."""
        for stage in self.stages:
            if progress < stage.until:
                return stage
        return self.stages[-1]

    def weights_at(self, stage: Stage) -> dict[str, float]:
        """The family and question weights in force during ``stage``."""
        return dict(stage.weights or self.family_weights)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _stages(role: str) -> tuple[Stage, ...]:
    full = {"full": 0.5, "context": 0.4, "crop": 0.1} if role == "svlm" else {"full": 0.9, "crop": 0.1}
    mixed = {"crop": 0.5, "full": 0.25, "context": 0.25} if role == "svlm" else {"crop": 0.5, "full": 0.5}
    return (
        Stage("light", 0.06, {"crop": 1.0}, {"crop:light": 1.0}),
        Stage("crops", 0.18, {"crop": 1.0}, {"crop": 6.0, "vqa": 1.0, "grounding": 1.0}),
        Stage("mixed", 0.38, mixed),
        Stage("full", 1.0, full),
    )


def _answer_stages(role: str) -> tuple[Stage, ...]:
    """The second phase: one stage weighted towards the VQA answers (see the module docstring)."""
    weights = {"vqa:light": 4.0, "vqa:cars": 2.0, "vqa:pedestrian": 3.0, "grounding": 1.5, "caption": 0.5}
    weights |= {"crop": 1.0}
    mix = {"context": 0.55, "full": 0.35, "crop": 0.1} if role == "svlm" else {"full": 0.9, "crop": 0.1}
    return (Stage("answers", 1.0, mix, weights),)


# Many short clips for the LVLM: 48 clips of 60 s are 48 light mounts and backdrops, and a held-out set of
# 6 such clips overstated the light (0.85 there, 0.45 on 12 unseen clips). The same frame budget is spread
# over 640 scenes, and 24 held-out clips measure it.
LVLM_DATA = DataRecipe(
    train_clips=640, frames_per_clip=60, frame_stride=3, crop_stride=6, heldout_clips=24, heldout_per_group=40
)


# The SVLM's runtime prompts: trained with 15% wrong LVLM answers and every referred object boxed, the shipped
# SVLM of the third stop ignored its context on the light (0.65 with an agreeing context turn and with a
# contradicting one) and counted cars worse with focus crops (0.44 against 0.69 without, with the real
# LVLM). Here the LVLM is wrong 5% of the time; stale context contradicts on top, so a car count under
# 1 s old contradicts the frame in 13% of the prompts and any answer over 1 s old in 15-31% (the
# 10-20% contradicting fresh context the targets assume; the light's context prompts below contradict in
# most). At 10% the SVLM found its car context wrong too often to use it (a count under 1 s old was
# wrong in 21%) and answered cars as it does alone. A third of its boxes are left out, and twice as many
# runs are recorded.
# The light-context prompts (the light's crop, a fresh context turn) at every sixth frame: 9,600 of them.
# The shipped LVLM's boxes after a VQA answer (12 unseen clips) hit the pedestrian 2 times in 37 (right row
# and height, wrong place) and the nearest car 23 in 51: the scripted LVLM misplaces those boxes at about
# these rates, so the SVLM learns to read a pedestrian or car crop that misses from the full frame.
SVLM_DATA = DataRecipe(
    lvlm_error=0.05,
    region_drop=0.3,
    region_miss={"pedestrian": 0.9, "car": 0.5},
    context_runs_per_clip=6,
    light_context_stride=6,
)


def _light_stages() -> tuple[Stage, ...]:
    """An LVLM phase: the full-frame light question drawn most (see the module docstring)."""
    weights = {"vqa:light": 12.0, "vqa:cars": 2.0, "vqa:pedestrian": 2.0, "grounding": 1.5, "caption": 0.3}
    return (Stage("lightmix", 1.0, {"full": 0.9, "crop": 0.1}, weights | {"crop": 1.0}),)


def _object_stages() -> tuple[Stage, ...]:
    """An LVLM phase: the car count and the pedestrian drawn most (see the module docstring)."""
    weights = {"vqa:light": 3.0, "vqa:cars": 8.0, "vqa:pedestrian": 6.0, "grounding": 2.0, "caption": 0.3}
    return (Stage("objects", 1.0, {"full": 0.9, "crop": 0.1}, weights | {"crop": 1.0}),)


def _focus_stages() -> tuple[Stage, ...]:
    """An SVLM phase: the runtime prompts drawn most, the light's most of all (see the module docstring)."""
    weights = {"vqa:light": 6.0, "vqa:cars": 2.0, "vqa:pedestrian": 2.0, "grounding": 1.0, "caption": 0.3}
    return (Stage("focus", 1.0, {"context": 0.6, "full": 0.3, "crop": 0.1}, weights | {"crop": 1.0}),)


# Clips with speed-limit signs (the speed-limit question: a fact that outlives the sign). The LVLM learns to
# read a posted sign (full frames and crops of it) on 120 short clips: the phase starts from a model that
# reads the rest already, and building the data costs about 10 s a clip on one shared core. A sign is posted
# within the first 0.5-7 s of a clip, so about half the clips show one. Each frame with a posted sign in
# view is also taught repainted with the other limits: with the clips' own signs alone, the background told
# the limits apart as well as the digits did, and a trained LVLM read held-out crops of the signs at chance
# (docs/benchmarks.md). The SVLM records its runtime prompts on 60 s clips, long enough that the limit is
# mostly known only from what came before, each simulated run with a history of 1, 2, 4 or 8 turns (what
# the runtime shows older keyframes as; measured in the benchmark), two runs on each of 40 clips (building
# a 60 s clip's prompts costs minutes on one shared core; with eight runs on each of 10 clips, the scenes
# were too few and the SVLM's pedestrian answers fell from 0.88 to 0.43 in the benchmark).
LVLM_SIGN_DATA = replace(
    LVLM_DATA, train_clips=120, heldout_clips=12, speed_signs=True, sign_variant_stride=1
)
SVLM_SIGN_DATA = replace(
    SVLM_DATA,
    train_clips=40,
    heldout_clips=3,
    context_runs_per_clip=2,
    speed_signs=True,
    history_lengths=(1, 2, 4, 8),
)
SIGN_DATA = {"lvlm": LVLM_SIGN_DATA, "svlm": SVLM_SIGN_DATA}


def _sign_stages(role: str) -> tuple[Stage, ...]:
    """A phase on clips with signs: the speed limit drawn most, the other answers kept.

    The LVLM first reads enlarged crops of the signs (86% of its batches): in the mixed stage alone,
    crops of signs were a fifth of the samples and its answer stayed at chance for thousands of steps,
    while crops alone broke through after about 600 steps.
    """
    weights = {
        "vqa:speed_limit": 8.0,
        "vqa:light": 3.0,
        "vqa:cars": 2.0,
        "vqa:pedestrian": 2.0,
        "grounding": 1.5,
        "caption": 0.3,
        "crop": 1.0,
        "crop:sign": 4.0,
    }
    if role == "svlm":
        return (Stage("signs", 1.0, {"context": 0.6, "full": 0.3, "crop": 0.1}, weights),)
    return (
        Stage("sign_crops", 0.3, {"crop": 1.0}, {"crop:sign": 6.0, "crop": 1.0}),
        Stage("signs", 1.0, {"full": 0.75, "crop": 0.25}, weights),
    )


# the phases of one role only: curriculum -> (role, stages)
ROLE_CURRICULA = {
    "light": ("lvlm", _light_stages),
    "objects": ("lvlm", _object_stages),
    "focus": ("svlm", _focus_stages),
}
WHY_ROLE_ONLY = {
    "lvlm": "the SVLM is not meant to read the light on full frames, and its object questions are weighted "
    "by the answers curriculum",
    "svlm": "the LVLM gets no context turns or focus crops",
}


RECIPES: dict[str, TrainRecipe] = {
    "lvlm": TrainRecipe(
        "lvlm", ModelSpec(text_layers=4, vision_layers=4), data=LVLM_DATA, stages=_stages("lvlm")
    ),
    "svlm": TrainRecipe(
        "svlm",
        ModelSpec(text_layers=2, vision_layers=2, input_width=112, input_height=84),
        data=SVLM_DATA,
        stages=_stages("svlm"),
        steps=10_000,
    ),
}


def micro_recipe(role: str, seed: int = 0) -> TrainRecipe:
    """A recipe that builds its data and trains in seconds (tests, plumbing checks)."""
    spec = ModelSpec(
        text_layers=1,
        vision_layers=1,
        hidden=32,
        text_intermediate=64,
        vision_hidden=32,
        vision_intermediate=64,
        heads=2,
        kv_heads=1,
        input_width=56,
        input_height=56,
    )
    data = DataRecipe(
        train_clips=1,
        frames_per_clip=40,
        frame_stride=10,
        crop_stride=20,
        context_runs_per_clip=1,
        context_keep=0.2,
        heldout_clips=1,
        heldout_per_group=2,
    )
    return replace(
        RECIPES[role],
        model=spec,
        data=data,
        seed=seed,
        batch_size=4,
        warmup_steps=2,
        steps=20,
        eval_every_steps=0,
        checkpoint_every_s=1e9,
        log_every_steps=1,
        max_new_tokens=8,
    )


def recipe_for(role: str, *, seed: int = 0, micro: bool = False, curriculum: str = "staged") -> TrainRecipe:
    """The recipe of ``role`` (lvlm or svlm) under ``seed`` and ``curriculum`` (one of CURRICULA)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    if curriculum not in CURRICULA:
        raise ValueError(f"unknown curriculum {curriculum!r}; expected one of {CURRICULA}")
    recipe = micro_recipe(role, seed) if micro else replace(RECIPES[role], seed=seed)
    if curriculum == "answers":
        warmup = min(recipe.warmup_steps, 100)
        recipe = replace(recipe, stages=_answer_stages(role), lr=1e-3, warmup_steps=warmup)
    if curriculum == "signs":
        data = recipe.data if micro else SIGN_DATA[role]
        recipe = replace(
            recipe,
            data=replace(data, speed_signs=True),
            stages=_sign_stages(role),
            lr=1e-3,
            warmup_steps=min(recipe.warmup_steps, 50),
        )
    if curriculum in ROLE_CURRICULA:
        owner, stages = ROLE_CURRICULA[curriculum]
        if role != owner:
            raise ValueError(f"the {curriculum} curriculum is the {owner.upper()}'s ({WHY_ROLE_ONLY[owner]})")
        recipe = replace(recipe, stages=stages(), lr=1e-3, warmup_steps=min(recipe.warmup_steps, 50))
    return recipe
