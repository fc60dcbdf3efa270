"""The evaluated modes in one place: what each one turns on, and how its answerer is assembled.

================================  ==========================================================================
mode                              what answers each frame
================================  ==========================================================================
``svlm``                          the SVLM alone (no context, no cloud); latest frame wins while busy
``lvlm``                          the cloud alone, asynchronous: newest LVLM answer that has arrived (stale)
``lvlm_blocking``                 a fresh LVLM answer per frame, waiting for it (latency = cloud delay)
``offload``                       per frame the cloud if its predicted delay fits the deadline, else SVLM
``spotvlm``                       SVLM with Context Replacement and Visual Focus from late LVLM answers
``spotvlm_no_focus``              ablation: ``focus.mode = off``
``spotvlm_no_replacement``        ablation: ``context.replacement = false`` (raw newest LVLM text)
================================  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...core.config import EVAL_MODES, SpotVlmConfig
from ...core.context_store import ContextStore
from ...core.keyframes import KeyframePolicy
from ...core.latency import LatencyModel
from ...models.base import VlmBackend
from ..baselines import BlockingCloudAnswerer, CloudUse, OffloadAnswerer, StaleCloudAnswerer
from ..clock import SimulatedClock
from ..cloud import CloudClient, DelaySampler, LvlmQuery, ResultCallback, SimulatedDispatcher, wants_regions
from ..edge import Answerer, EdgeRuntime

AnswererKind = Literal["edge", "cloud_stale", "cloud_blocking", "offload"]


@dataclass(frozen=True)
class ModeSpec:
    """How one mode uses the edge, the context store and the cloud."""

    name: str
    answerer: AnswererKind
    context: bool
    keyframes: bool
    focus: bool = True
    replacement: bool = True
    description: str = ""


MODES: dict[str, ModeSpec] = {
    m.name: m
    for m in (
        ModeSpec("svlm", "edge", context=False, keyframes=False, description="SVLM alone"),
        ModeSpec(
            "lvlm", "cloud_stale", context=True, keyframes=True, description="newest arrived LVLM answer"
        ),
        ModeSpec(
            "lvlm_blocking",
            "cloud_blocking",
            context=False,
            keyframes=False,
            description="fresh LVLM answer, waits",
        ),
        ModeSpec(
            "offload", "offload", context=False, keyframes=False, description="cloud if it fits the deadline"
        ),
        ModeSpec("spotvlm", "edge", context=True, keyframes=True, description="Context Transfer"),
        ModeSpec(
            "spotvlm_no_focus",
            "edge",
            context=True,
            keyframes=True,
            focus=False,
            description="without Visual Focus",
        ),
        ModeSpec(
            "spotvlm_no_replacement",
            "edge",
            context=True,
            keyframes=True,
            replacement=False,
            description="raw newest LVLM text",
        ),
    )
}
assert tuple(MODES) == EVAL_MODES, "modes and the config schema must list the same names"


def mode_config(config: SpotVlmConfig, spec: ModeSpec) -> SpotVlmConfig:
    """The config a mode runs with (context on/off, replacement, focus mode)."""
    context = config.context.model_copy(
        update={"enabled": spec.context, "replacement": config.context.replacement and spec.replacement}
    )
    focus = config.focus if spec.focus else config.focus.model_copy(update={"mode": "off"})
    return config.model_copy(update={"context": context, "focus": focus})


@dataclass
class ModeRun:
    """The pieces of one mode's run: its answerer, the keyframe cloud client if any, and usage counters."""

    spec: ModeSpec
    answerer: Answerer
    cloud: CloudClient | None = None
    cloud_use: CloudUse | None = None
    offload: OffloadAnswerer | None = None

    def cloud_json(self) -> dict[str, float | int]:
        """Requests and bytes sent to the cloud, whichever way this mode uses it."""
        if self.cloud is not None:
            return self.cloud.stats.to_json()
        if self.cloud_use is not None:
            data: dict[str, float | int] = dict(self.cloud_use.to_json())
            if self.offload is not None:
                data["cloud_fraction"] = self.offload.cloud_fraction
            return data
        return {"requests": 0, "bytes_sent": 0}


def build_mode(
    spec: ModeSpec,
    config: SpotVlmConfig,
    *,
    task: str,
    prompt: str,
    edge_backend: VlmBackend,
    cloud_backend: VlmBackend,
    latency: LatencyModel,
    clock: SimulatedClock,
    origin_ns: int,
    on_result: ResultCallback | None = None,
) -> ModeRun:
    """Assemble a mode's answerer (and cloud client) on a simulated clock."""
    cfg = mode_config(config, spec)
    store = ContextStore.from_config(cfg.context)
    query = LvlmQuery(cloud_backend, cfg, task, prompt, wants_regions(cfg, task))
    delay = DelaySampler(clock, latency, cfg.cloud.step_time_s, origin_ns)

    def edge() -> EdgeRuntime:
        return EdgeRuntime(
            edge_backend, cfg, store, task=task, prompt=prompt, step_time_s=cfg.edge.step_time_s
        )

    cloud = None
    if spec.keyframes:
        cloud = CloudClient(
            query,
            store,
            clock,
            SimulatedDispatcher(clock, delay),
            KeyframePolicy(cfg.keyframes),
            cfg.keyframes.timeout_s,
            on_result,
            preempt_after_s=cfg.keyframes.preempt_after_s,
        )
    if spec.answerer == "edge":
        return ModeRun(spec, edge(), cloud)
    if spec.answerer == "cloud_stale":
        return ModeRun(spec, StaleCloudAnswerer(store, task), cloud)
    blocking = BlockingCloudAnswerer(query, delay, clock)
    if spec.answerer == "cloud_blocking":
        return ModeRun(spec, blocking, cloud_use=blocking.use)
    offload = OffloadAnswerer(
        edge(), blocking, cfg.eval.deadline_s, cfg.eval.offload_ewma_alpha, cfg.eval.offload_probe_interval_s
    )
    return ModeRun(spec, offload, cloud_use=blocking.use, offload=offload)
