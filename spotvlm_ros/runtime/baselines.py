"""The answerers of the baselines SpotVLM is evaluated against (simulated clock).

- :class:`StaleCloudAnswerer` (``lvlm``): the cloud alone, asynchronous. Keyframes go out through the
  usual :class:`~spotvlm_ros.runtime.cloud.CloudClient`; every frame is answered at once with the newest
  LVLM answer that has arrived, however old (its regions stay in keyframe pixels).
- :class:`BlockingCloudAnswerer` (``lvlm_blocking``): every frame gets its own fresh LVLM answer and waits
  for it: latency = that request's delay. The requests do not occupy the edge (no frame is dropped), so
  this is the accuracy ceiling of the cloud model at the cloud's latency.
- :class:`OffloadAnswerer` (``offload``): per frame, the cloud when the predicted delay (EWMA of observed
  delays, refreshed by pings when the cloud was not used for a while) fits the deadline, else the SVLM.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.context_store import ContextStore
from ..core.types import CONTEXT_USED, EdgeAnswer, Frame
from ..models.base import BackendError
from .clock import Clock
from .cloud import DelaySampler, Keyframe, LvlmQuery
from .edge import EdgeRuntime, Step


class StaleCloudAnswerer:
    """Answer with the newest LVLM result held, at no edge cost."""

    def __init__(self, store: ContextStore, task: str):
        self.store = store
        self.task = task

    def observe(self, frame: Frame) -> None:
        """Nothing to keep: the cloud client sees the frames."""

    def answer(self, frame: Frame, skipped: int = 0) -> Step:
        result = self.store.newest(self.task)
        if result is None:
            answer = EdgeAnswer(frame.stamp_ns, self.task, "", frame.frame_id, skipped_frames=skipped)
            return Step(answer, busy_s=0.0, latency_s=0.0)
        answer = EdgeAnswer(
            stamp_ns=frame.stamp_ns,
            task=self.task,
            text=result.text,
            frame_id=frame.frame_id,
            regions=result.regions,
            context_id=result.request_id,
            context_age_s=result.age_s(frame.stamp_ns),
            context_status=CONTEXT_USED,
            skipped_frames=skipped,
        )
        return Step(answer, busy_s=0.0, latency_s=0.0)


@dataclass
class CloudUse:
    """Requests and bytes a baseline sent to the cloud."""

    requests: int = 0
    bytes_sent: int = 0
    errors: int = 0
    pings: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "bytes_sent": self.bytes_sent,
            "errors": self.errors,
            "pings": self.pings,
        }


class BlockingCloudAnswerer:
    """A fresh LVLM answer for every frame; its latency is that request's simulated delay."""

    def __init__(self, query: LvlmQuery, delay: DelaySampler, clock: Clock):
        self.query = query
        self.delay = delay
        self.clock = clock
        self.use = CloudUse()

    def observe(self, frame: Frame) -> None:
        """Nothing to keep: every frame is sent as it is answered."""

    def answer(self, frame: Frame, skipped: int = 0) -> Step:
        self.use.requests += 1
        request_id = f"{self.query.task}-blocking-{self.use.requests}"
        jpegs = self.query.encode_all(frame)  # every camera of a frame group
        keyframe = Keyframe(request_id, frame, jpegs[0], self.clock.now_ns(), jpegs[1:])
        self.use.bytes_sent += keyframe.bytes_sent
        delay = self.delay()
        try:
            generation = self.query.generate(keyframe)
        except BackendError as err:
            self.use.errors += 1
            answer = EdgeAnswer(frame.stamp_ns, self.query.task, "", frame.frame_id, inference_s=delay)
            return Step(answer, busy_s=0.0, latency_s=delay, error=str(err) or type(err).__name__)
        answer = EdgeAnswer(
            stamp_ns=frame.stamp_ns,
            task=self.query.task,
            text=generation.text,
            frame_id=frame.frame_id,
            regions=generation.regions,
            context_id=request_id,
            context_age_s=0.0,
            context_status=CONTEXT_USED,
            inference_s=delay,
            prompt_tokens=generation.prompt_tokens,
            image_tokens=generation.image_tokens,
            skipped_frames=skipped,
        )
        return Step(answer, busy_s=0.0, latency_s=delay)


class OffloadAnswerer:
    """Dynamic offloading: cloud when its predicted delay fits ``deadline_s``, else the SVLM."""

    def __init__(
        self,
        edge: EdgeRuntime,
        cloud: BlockingCloudAnswerer,
        deadline_s: float,
        alpha: float,
        probe_interval_s: float,
    ):
        self.edge = edge
        self.cloud = cloud
        self.deadline_s = deadline_s
        self.alpha = alpha
        self.probe_interval_ns = int(probe_interval_s * 1e9)
        self.estimate_s = cloud.delay.mean_s
        self._last_measure_ns: int | None = None
        self.cloud_frames = 0
        self.edge_frames = 0

    def _observe_delay(self, delay_s: float) -> None:
        self.estimate_s = self.alpha * delay_s + (1.0 - self.alpha) * self.estimate_s
        self._last_measure_ns = self.cloud.clock.now_ns()

    def observe(self, frame: Frame) -> None:
        self.edge.observe(frame)

    def answer(self, frame: Frame, skipped: int = 0) -> Step:
        now = self.cloud.clock.now_ns()
        if self._last_measure_ns is None:
            self._last_measure_ns = now
        elif now - self._last_measure_ns >= self.probe_interval_ns:
            self.cloud.use.pings += 1
            self._observe_delay(self.cloud.delay())
        if self.estimate_s <= self.deadline_s:
            self.cloud_frames += 1
            step = self.cloud.answer(frame, skipped)
            self._observe_delay(step.latency_s)
            return step
        self.edge_frames += 1
        return self.edge.answer(frame, skipped)

    @property
    def cloud_fraction(self) -> float:
        total = self.cloud_frames + self.edge_frames
        return self.cloud_frames / total if total else 0.0
