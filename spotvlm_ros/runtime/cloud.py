"""The cloud side of the loop: keyframes out, late LVLM answers into the context store, never blocking.

:class:`CloudClient` sees every frame. Its :class:`~spotvlm_ros.core.keyframes.KeyframePolicy` picks
keyframes; each one is JPEG-encoded (the bytes a real link would carry), sent through a dispatcher and,
when the answer arrives, stored as an :class:`LvlmResult` keyed by the keyframe's stamp. Requests past
``keyframes.timeout_s`` are cancelled and their slot freed; late or failed answers are counted, never
waited for. An out-of-order answer (older keyframe than the newest held) never replaces a newer one.
Single requests are logged at DEBUG only; an optional :class:`~.link_state.CloudLinkState` logs one line
per change of the link (up, degraded, down).

Dispatchers decide *when* an answer arrives, so the same client runs under both clocks:

- :class:`SimulatedDispatcher`: the LVLM runs at once (its compute is part of the modelled delay) and the
  answer is delivered at ``send time + latency model delay + cloud.step_time_s`` on the virtual clock.
- :class:`ThreadDispatcher`: the LVLM runs in a worker thread (a local model, or an HTTP backend); the
  answer is delivered when it is ready, on the wall clock.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from ..core.config import SpotVlmConfig
from ..core.context_store import ContextStore
from ..core.focus.cameras import camera_set_input
from ..core.keyframes import KeyframePolicy
from ..core.latency import LatencyModel
from ..core.types import NS_PER_S, Frame, LvlmResult, Region, s_to_ns
from ..models.base import BackendError, Generation, VlmBackend
from .clock import Clock, Timer
from .frozen import decode_jpeg_once, encode_jpeg_once

if TYPE_CHECKING:
    import numpy as np

    from .link_state import CloudLinkState

LOG = logging.getLogger("spotvlm.cloud")
ROUND_TRIPS_KEPT = 1000
"""Round trips :class:`CloudStats` keeps (the newest), so a long run holds a bounded amount."""

ResultCallback = Callable[[LvlmResult, int, bool], None]
"""Called with (result, receive stamp ns, accepted as the newest context)."""


@dataclass(frozen=True, slots=True)
class Keyframe:
    """One encoded keyframe on its way to the LVLM (``more``: the other cameras of a group, in order)."""

    request_id: str
    frame: Frame
    jpeg: bytes
    send_ns: int
    more: tuple[bytes, ...] = ()

    @property
    def bytes_sent(self) -> int:
        """Encoded bytes of every camera."""
        return len(self.jpeg) + sum(len(j) for j in self.more)


def wants_regions(config: SpotVlmConfig, task: str) -> bool:
    """Whether the LVLM is asked for grounded regions: for grounding, and whenever Visual Focus is on."""
    return task == "grounding" or config.focus.mode != "off"


class LvlmQuery:
    """How a keyframe becomes an LVLM call: prompt, image as the cloud sees it, regions in frame pixels."""

    def __init__(
        self, backend: VlmBackend, config: SpotVlmConfig, task: str, prompt: str, want_regions: bool
    ):
        self.backend = backend
        self.task = task
        self.prompt = prompt
        self.want_regions = want_regions
        self.system_prompt = config.system_prompt
        self.max_new_tokens = config.cloud.max_new_tokens
        self.jpeg_quality = config.keyframes.jpeg_quality
        self.max_image_side = min(config.keyframes.max_image_side, config.cloud.image_max_side)
        self.multi_camera = config.focus.multi_camera

    def encode(self, frame: Frame) -> bytes:
        """The keyframe as the JPEG a real link would carry."""
        return encode_jpeg_once(frame.image, self.jpeg_quality, self.max_image_side)

    def decoded(self, view: Frame, jpeg: bytes) -> np.ndarray:
        """The cloud's decode of ``jpeg``, the encoding of ``view`` (:meth:`encode`)."""
        return decode_jpeg_once(view.image, jpeg, self.jpeg_quality, self.max_image_side)

    def encode_all(self, frame: Frame) -> tuple[bytes, ...]:
        """One JPEG per camera of ``frame`` (the reference camera first)."""
        return tuple(self.encode(view) for view in frame.views)

    def messages(self, images: int = 1, note: str = "") -> list[dict]:
        text = f"{note} {self.prompt}" if note else self.prompt  # the backend adds the grounding request
        parts = [{"type": "image"} for _ in range(images)]
        return [
            {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]},
            {"role": "user", "content": [*parts, {"type": "text", "text": text}]},
        ]

    def generate(self, keyframe: Keyframe) -> Generation:
        """Run the LVLM on the decoded JPEG(s); regions in keyframe pixels of their camera.

        Raises BackendError.
        """
        if keyframe.more:
            return self._generate_cameras(keyframe)
        image = self.decoded(keyframe.frame.views[0], keyframe.jpeg)
        generation = self.backend.generate(
            self.messages(), [image], max_new_tokens=self.max_new_tokens, want_regions=self.want_regions
        )
        sx = keyframe.frame.width / image.shape[1]
        sy = keyframe.frame.height / image.shape[0]
        if generation.regions and (sx != 1.0 or sy != 1.0):
            regions = tuple(Region(r.box.scale(sx, sy), r.label, r.score) for r in generation.regions)
            generation = replace(generation, regions=regions)
        return generation

    def _generate_cameras(self, keyframe: Keyframe) -> Generation:
        views = keyframe.frame.views
        jpegs = (keyframe.jpeg, *keyframe.more)
        images = [self.decoded(view, jpeg) for view, jpeg in zip(keyframe.frame.views, jpegs, strict=True)]
        names = [view.frame_id for view in views]
        shown = camera_set_input(images, names, self.multi_camera, self.max_image_side, self.want_regions)
        generation = self.backend.generate(
            self.messages(len(shown.images), shown.note),
            shown.images,
            max_new_tokens=self.max_new_tokens,
            want_regions=self.want_regions,
        )
        scales = {
            v.frame_id: (v.width / i.shape[1], v.height / i.shape[0])
            for v, i in zip(views, images, strict=True)
        }
        regions = tuple(
            replace(r, box=r.box.scale(*scales[r.frame_id])) for r in shown.to_cameras(generation.regions)
        )
        return replace(generation, regions=regions)

    def result(self, keyframe: Keyframe, generation: Generation, round_trip_s: float) -> LvlmResult:
        frame = keyframe.frame
        return LvlmResult(
            request_id=keyframe.request_id,
            stamp_ns=frame.stamp_ns,
            task=self.task,
            prompt=self.prompt,
            text=generation.text,
            regions=generation.regions,
            image_size=(frame.width, frame.height),
            model=self.backend.name,
            round_trip_s=round_trip_s,
            frame_id=frame.frame_id,
            camera_sizes=tuple((v.frame_id, v.width, v.height) for v in frame.cameras),
        )


Done = Callable[[Generation | None, str, float], None]
"""Delivery of one request: (generation or None, error text, round-trip seconds)."""


class Dispatcher(Protocol):
    """Runs LVLM calls and delivers their answers at the right time of its clock."""

    def submit(self, request_id: str, call: Callable[[], Generation], done: Done) -> None: ...

    def cancel(self, request_id: str) -> None: ...

    def close(self) -> None: ...


class DelaySampler:
    """Simulated round trip of a request sent now: latency model delay + fixed cloud compute seconds.

    ``origin_ns`` is the stream time that counts as t = 0 for time-dependent models (spikes, traces).
    """

    def __init__(self, clock: Clock, latency: LatencyModel, extra_s: float = 0.0, origin_ns: int = 0):
        self.clock = clock
        self.latency = latency
        self.extra_s = extra_s
        self.origin_ns = origin_ns

    @property
    def mean_s(self) -> float:
        return float(self.latency.mean_s) + self.extra_s

    def __call__(self) -> float:
        send_s = (self.clock.now_ns() - self.origin_ns) / NS_PER_S
        return max(0.0, float(self.latency.sample(send_s))) + self.extra_s


class SimulatedDispatcher:
    """Virtual time: run the call now, deliver after a :class:`DelaySampler` delay."""

    def __init__(self, clock: Clock, delay: DelaySampler):
        self.clock = clock
        self.delay = delay
        self._timers: dict[str, Timer] = {}

    def submit(self, request_id: str, call: Callable[[], Generation], done: Done) -> None:
        delay = self.delay()
        try:
            generation, error = call(), ""
        except BackendError as err:
            generation, error = None, str(err) or type(err).__name__

        def deliver() -> None:
            self._timers.pop(request_id, None)
            done(generation, error, delay)

        self._timers[request_id] = self.clock.call_at(self.clock.now_ns() + s_to_ns(delay), deliver)

    def cancel(self, request_id: str) -> None:
        timer = self._timers.pop(request_id, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


class ThreadDispatcher:
    """Wall time: run calls in worker threads; the answer is delivered from the worker when ready."""

    def __init__(self, clock: Clock, max_workers: int = 1, cancel_backend: Callable[[], None] | None = None):
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="spotvlm-lvlm")
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._cancel_backend = cancel_backend

    def submit(self, request_id: str, call: Callable[[], Generation], done: Done) -> None:
        sent_ns = self.clock.now_ns()

        def run() -> None:
            try:
                generation, error = call(), ""
            except BackendError as err:
                generation, error = None, str(err) or type(err).__name__
            except Exception as err:  # a broken backend must not kill the worker silently
                LOG.exception("LVLM request %s failed", request_id)
                generation, error = None, f"{type(err).__name__}: {err}"
            with self._lock:
                if self._futures.pop(request_id, None) is None:
                    return  # cancelled meanwhile
            try:
                done(generation, error, (self.clock.now_ns() - sent_ns) / NS_PER_S)
            except Exception:  # a failing consumer (e.g. the output bag) must not vanish in the pool
                LOG.exception("delivering LVLM request %s failed", request_id)

        with self._lock:
            self._futures[request_id] = self._pool.submit(run)

    def cancel(self, request_id: str) -> None:
        with self._lock:
            future = self._futures.pop(request_id, None)
        if future is not None and not future.cancel() and self._cancel_backend is not None:
            self._cancel_backend()  # already running: ask the backend to abort (HTTP backends can)

    def close(self) -> None:
        with self._lock:
            pending = list(self._futures)
        for request_id in pending:
            self.cancel(request_id)
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class CloudStats:
    """What the cloud client did during a run."""

    requests: int = 0
    bytes_sent: int = 0
    results: int = 0
    accepted: int = 0
    out_of_order: int = 0
    errors: int = 0
    timeouts: int = 0
    preempted: int = 0
    cancelled: int = 0
    round_trips_s: deque[float] = field(default_factory=lambda: deque(maxlen=ROUND_TRIPS_KEPT))

    def to_json(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "bytes_sent": self.bytes_sent,
            "results": self.results,
            "accepted": self.accepted,
            "out_of_order": self.out_of_order,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "preempted": self.preempted,
            "cancelled_at_end": self.cancelled,
        }


class CloudClient:
    """Keyframe policy -> LVLM request -> context store; every method returns without waiting.

    ``preempt_after_s > 0``: when every slot is busy, the oldest request is cancelled once it is that old,
    so the newest frame goes out instead (as the ROS bridge does). ``link`` hears every answer, error and
    timeout (not preemptions or the cancellations at close).
    """

    def __init__(
        self,
        query: LvlmQuery,
        store: ContextStore,
        clock: Clock,
        dispatcher: Dispatcher,
        policy: KeyframePolicy,
        timeout_s: float,
        on_result: ResultCallback | None = None,
        preempt_after_s: float = 0.0,
        link: CloudLinkState | None = None,
    ):
        self.query = query
        self.store = store
        self.clock = clock
        self.dispatcher = dispatcher
        self.policy = policy
        self.timeout_ns = s_to_ns(timeout_s)
        self.preempt_ns = s_to_ns(preempt_after_s)
        self.on_result = on_result
        self.link = link
        self.stats = CloudStats()
        self._lock = threading.RLock()
        self._count = 0
        self._pending: dict[str, Keyframe] = {}
        self._timers: dict[str, Timer] = {}

    def on_frame(self, frame: Frame) -> str:
        """Offer a frame; returns the request id when it was sent as a keyframe, else ``""``."""
        now = self.clock.now_ns()
        with self._lock:
            if self._pending:
                self.expire(now)
            if not self._approve(frame, now):
                return ""
            self._count += 1
            request_id = f"{self.query.task}-{self._count}"
            jpegs = self.query.encode_all(frame)
            keyframe = Keyframe(request_id, frame, jpegs[0], now, jpegs[1:])
            self.policy.on_sent(request_id, now)
            self._pending[request_id] = keyframe
            self.stats.requests += 1
            self.stats.bytes_sent += keyframe.bytes_sent
            self._timers[request_id] = self.clock.call_at(now + self.timeout_ns, self._expire_now)
        self.dispatcher.submit(
            request_id,
            lambda: self.query.generate(keyframe),
            lambda g, e, rt: self._deliver(keyframe, g, e, rt),
        )
        return request_id

    def _approve(self, frame: Frame, now_ns: int) -> bool:
        """Ask the keyframe policy; when it refuses for lack of a slot, preemption may free one."""
        if self.policy.should_send(frame.stamp_ns, frame.image, now_ns):
            return True
        return self._preempt_for(frame, now_ns) and self.policy.should_send(
            frame.stamp_ns, frame.image, now_ns
        )

    def _preempt_for(self, frame: Frame, now_ns: int) -> bool:
        """With every slot busy, cancel the oldest request once it is ``preempt_after_s`` old (0 = never)."""
        if self.preempt_ns <= 0 or not self._pending or len(self._pending) < self.policy.max_in_flight:
            return False
        oldest = min(self._pending.values(), key=lambda k: k.send_ns)
        if now_ns - oldest.send_ns < self.preempt_ns or frame.stamp_ns <= oldest.frame.stamp_ns:
            return False
        del self._pending[oldest.request_id]
        self._drop_timer(oldest.request_id)
        self.policy.on_done(oldest.request_id)
        self.dispatcher.cancel(oldest.request_id)
        self.stats.preempted += 1
        return True

    def _expire_now(self) -> None:
        self.expire(self.clock.now_ns())

    def expire(self, now_ns: int) -> list[str]:
        """Cancel requests past the timeout; returns their ids."""
        with self._lock:
            expired = self.policy.expired(now_ns)
            for request_id in expired:
                if self._pending.pop(request_id, None) is not None:
                    self.stats.timeouts += 1
                    self._drop_timer(request_id)
                    self.dispatcher.cancel(request_id)
        if expired:
            LOG.debug("LVLM request(s) %s timed out and were cancelled", ", ".join(expired))
            if self.link is not None:
                timeout_s = self.timeout_ns / NS_PER_S
                for request_id in expired:
                    self.link.failure(request_id, f"no answer within keyframes.timeout_s={timeout_s:g}")
        return expired

    def _drop_timer(self, request_id: str) -> None:
        timer = self._timers.pop(request_id, None)
        if timer is not None:
            timer.cancel()

    def _deliver(
        self, keyframe: Keyframe, generation: Generation | None, error: str, round_trip_s: float
    ) -> None:
        receive_ns = self.clock.now_ns()
        with self._lock:
            if self._pending.pop(keyframe.request_id, None) is None:
                return  # timed out (and cancelled) before it arrived
            self._drop_timer(keyframe.request_id)
            self.policy.on_done(keyframe.request_id)
            if generation is None:
                self.stats.errors += 1
                LOG.debug("LVLM request %s failed: %s", keyframe.request_id, error)
                result, accepted = None, False
            else:
                result = self.query.result(keyframe, generation, round_trip_s)
                accepted = self.store.add(result)
                self.stats.results += 1
                self.stats.round_trips_s.append(round_trip_s)
                if accepted:
                    self.stats.accepted += 1
                else:
                    self.stats.out_of_order += 1
        if result is None:
            if self.link is not None:
                self.link.failure(keyframe.request_id, error)
            return
        if self.link is not None:
            self.link.success(keyframe.request_id, round_trip_s)
        if self.on_result is not None:
            self.on_result(result, receive_ns, accepted)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Cancel everything in flight and stop the dispatcher."""
        with self._lock:
            for request_id in list(self._pending):
                self._drop_timer(request_id)
            self.stats.cancelled += len(self._pending)
            self._pending.clear()
        self.dispatcher.close()
