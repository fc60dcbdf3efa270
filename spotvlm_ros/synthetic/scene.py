"""State and dynamics of one synthetic clip: the ego, the light, cars and pedestrians.

The ego creeps towards the junction and stops for red; pedestrians (in clips that have them) walk across
the far crosswalk one after another, pausing at the kerb; cars are ``traffic.Traffic``'s. Everything is
seeded: a clip's generators come from one ``numpy`` seed sequence (separate streams for the layout, the
light, traffic and pedestrians), so the same seed replays the same clip exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import street
from .camera import Camera
from .signal import GREEN, RED, SignalCycle
from .signs import SpeedSigns
from .traffic import Car, RoadState, Traffic, car_corners

MAX_CARS = 3
EGO_CRUISE_RANGE = (1.2, 2.2)  # m/s: the ego creeps towards the junction in slow traffic
EGO_ACCEL = 1.0
EGO_COMFORT_DECEL = 1.5
EGO_MAX_DECEL = 2.5
EGO_STOP_TOLERANCE_M = 0.5  # overshoot of the stopping point that still counts as stopped
PEDESTRIAN_SPEED_RANGE = (1.4, 1.9)
PEDESTRIAN_GAP_RANGE_S = (0.8, 2.0)
PEDESTRIAN_WAIT_RANGE_S = (0.0, 0.6)
PEDESTRIAN_SIDEWALK_M = 1.5  # how far from the kerb a pedestrian appears and disappears
MAX_PEDESTRIANS = 5
# Oncoming cars wait for a pedestrian who is in front of their lane (plus a margin), or will be there
# before the car could have cleared the crosswalk.
ONCOMING_LANE_ZONE_X = (street.ROAD_LEFT_X - 0.5, street.ONCOMING_LANE_X + street.CAR_WIDTH_M / 2.0 + 0.5)
ONCOMING_LOOKAHEAD_S = 3.5
WAITING_CAR_REACH_M = 3.0  # a car waiting this close to the crosswalk for PEDESTRIAN_PATIENCE_S ...
PEDESTRIAN_PATIENCE_S = 3.0  # ... is let through: people at the kerb wait for it
PEDESTRIAN_WARM_UP_S = 8.0  # the crosswalk's stream of people is already going when a clip starts
PEDESTRIAN_WARM_UP_STEP_S = 0.1

SHIRT_COLORS = ((190, 40, 50), (40, 90, 200), (225, 175, 70), (30, 150, 70), (230, 230, 230), (170, 60, 170))
TROUSER_COLORS = ((30, 30, 40), (50, 60, 110), (90, 80, 60), (20, 20, 20))
SKIN_COLORS = ((240, 200, 170), (200, 150, 110), (140, 95, 60), (90, 60, 40))


@dataclass(frozen=True, slots=True)
class ClipSpec:
    """What a clip contains: how many cars traffic aims at (0-3), whether pedestrians cross, speed signs."""

    traffic: int
    pedestrians: bool
    signs: bool = False  # speed-limit signs along the verge (and the speed-limit question)

    def __post_init__(self) -> None:
        if not 0 <= self.traffic <= MAX_CARS:
            raise ValueError(f"traffic must be 0..{MAX_CARS}, got {self.traffic}")


@dataclass
class Pedestrian:
    """A pedestrian walking across the road on the far crosswalk, pausing at the kerb first."""

    ident: int
    z: float
    x: float
    direction: int  # +1 walks to the right
    speed: float
    wait_s: float
    colors: tuple[tuple[int, int, int], ...]  # shirt, trousers, skin
    walked_m: float = 0.0
    walking: bool = True

    @property
    def kerb_x(self) -> float:
        return street.ROAD_LEFT_X - 0.3 if self.direction > 0 else street.ROAD_RIGHT_X + 0.3

    @property
    def end_x(self) -> float:
        if self.direction > 0:
            return street.ROAD_RIGHT_X + PEDESTRIAN_SIDEWALK_M
        return street.ROAD_LEFT_X - PEDESTRIAN_SIDEWALK_M

    @property
    def crossing(self) -> bool:
        """On the carriageway (between the kerbs)."""
        return street.ROAD_LEFT_X <= self.x <= street.ROAD_RIGHT_X


@dataclass
class Scene:
    """One clip's world; ``step`` advances it, the painter and the ground truth read it."""

    spec: ClipSpec
    signal: SignalCycle
    traffic: Traffic
    rng_people: np.random.Generator
    light_z: float
    ego_cruise: float
    t: float = 0.0
    ego_z: float = 0.0
    ego_speed: float = 0.0
    odometer: float = 0.0  # metres driven (ego_z wraps, this does not)
    signs: SpeedSigns | None = None
    pedestrians: list[Pedestrian] = field(default_factory=list)
    _next_id: int = 0
    _next_pedestrian_t: float = 0.0

    @classmethod
    def create(
        cls,
        spec: ClipSpec,
        camera: Camera,
        seed_sequence: np.random.SeedSequence,
        signs_sequence: np.random.SeedSequence | None = None,
    ) -> Scene:
        """A fresh scene of one clip, with its initial cars and pedestrians (and signs) placed.

        The signs draw from ``signs_sequence`` alone, so a clip with signs has the same traffic, light
        and pedestrians as without.
        """
        rng_layout, rng_light, rng_traffic, rng_people = (
            np.random.default_rng(s) for s in seed_sequence.spawn(4)
        )
        light_z = float(rng_layout.uniform(street.STOP_DISTANCE_M, street.LIGHT_FAR_M))
        scene = cls(
            spec=spec,
            signal=SignalCycle(rng_light),
            traffic=Traffic(rng_traffic, camera, spec.traffic, light_z),
            rng_people=rng_people,
            light_z=light_z,
            ego_cruise=float(rng_layout.uniform(*EGO_CRUISE_RANGE)),
        )
        scene.ego_speed = scene._ego_target_speed()
        if spec.signs:
            sequence = signs_sequence or np.random.SeedSequence(0)
            scene.signs = SpeedSigns.draw(np.random.default_rng(sequence))
        if spec.pedestrians:
            scene._warm_up_pedestrians()
        scene.traffic.place_initial(scene.road_state())
        return scene

    # ----------------------------------------------------------------- reading
    @property
    def light_distance(self) -> float:
        return self.light_z - self.ego_z

    @property
    def light_state(self) -> str:
        return self.signal.state(self.t)

    @property
    def speed_limit(self) -> str | None:
        """The posted speed limit (``signs.NO_LIMIT`` before the first sign); None in a clip without signs."""
        return self.signs.limit(self.odometer) if self.signs is not None else None

    @property
    def cars(self) -> list[Car]:
        return self.traffic.cars

    def road_state(self) -> RoadState:
        """What the drivers react to now."""
        return RoadState(
            self.t,
            self.light_state,
            self.signal.remaining(self.t),
            self.light_z,
            self.ego_z,
            any(self._will_cross_oncoming_lane(p) for p in self.pedestrians),
        )

    @staticmethod
    def _will_cross_oncoming_lane(person: Pedestrian) -> bool:
        """Walking in front of the oncoming lane now or within the next few seconds (cars wait for them)."""
        low, high = ONCOMING_LANE_ZONE_X
        if not person.walking:  # waiting at the kerb: lets the car pass first
            return False
        ahead = person.x + person.direction * person.speed * ONCOMING_LOOKAHEAD_S
        return min(person.x, ahead) <= high and max(person.x, ahead) >= low

    # ----------------------------------------------------------------- dynamics
    def step(self, dt: float) -> None:
        """Advance the world by ``dt`` seconds."""
        road = self.road_state()
        self._step_ego(dt)
        self.traffic.step(road, dt)
        self._step_pedestrians(dt)
        self.t += dt
        self.traffic.spawn(self.road_state(), dt)
        if self.spec.pedestrians:
            self._spawn_pedestrian(self.t)

    def _ego_target_speed(self) -> float:
        """Cruise, but stop before the junction for red, and for yellow when there is room to stop."""
        state = self.light_state
        gap = self.light_distance - street.STOP_DISTANCE_M
        if state != GREEN and gap > -EGO_STOP_TOLERANCE_M:
            can_stop = self.ego_speed**2 / (2.0 * EGO_MAX_DECEL) <= gap + EGO_STOP_TOLERANCE_M
            if state == RED or can_stop:
                return min(self.ego_cruise, math.sqrt(2.0 * EGO_COMFORT_DECEL * max(gap, 0.0)))
        return self.ego_cruise

    def _step_ego(self, dt: float) -> None:
        target = self._ego_target_speed()
        change = float(np.clip(target - self.ego_speed, -EGO_MAX_DECEL * dt, EGO_ACCEL * dt))
        self.ego_speed = max(self.ego_speed + change, 0.0)
        self.ego_z += self.ego_speed * dt
        self.odometer += self.ego_speed * dt
        if self.light_distance < street.LIGHT_NEAR_M:
            self.ego_z -= street.WRAP_M  # past the junction: the approach starts over further back

    def _crosswalk_busy(self) -> bool:
        """A car is on (or about to roll onto) the far crosswalk, or has waited at it for a while."""
        low = self.light_z + street.FAR_CROSSWALK[0] - 1.0
        high = self.light_z + street.FAR_CROSSWALK[1] + 1.0
        for car in self.traffic.cars:
            xs, zs = car_corners(car.pose(), 0.0)
            reach = WAITING_CAR_REACH_M if car.stopped_s >= PEDESTRIAN_PATIENCE_S else 0.0
            on_road = xs.max() > street.ROAD_LEFT_X and xs.min() < street.ROAD_RIGHT_X
            if on_road and zs.min() < high + reach and zs.max() > low:
                return True
        return False

    @staticmethod
    def _step_pedestrian(person: Pedestrian, dt: float, crosswalk_busy: bool) -> None:
        """Walk; at the kerb wait out the pause, and for any car on the crosswalk, before stepping off."""
        if not person.walking:
            person.wait_s -= dt
            person.walking = person.wait_s <= 0.0 and not crosswalk_busy
            return
        before = (person.kerb_x - person.x) * person.direction
        step = person.speed * dt
        person.x += person.direction * step
        person.walked_m += step
        at_kerb = before > 0 >= (person.kerb_x - person.x) * person.direction
        if at_kerb and (person.wait_s > 0.0 or crosswalk_busy):
            person.x = person.kerb_x
            person.walking = False

    # ----------------------------------------------------------------- pedestrians
    def _new_pedestrian(self) -> Pedestrian:
        rng = self.rng_people
        self._next_id += 1
        direction = 1 if rng.random() < 0.5 else -1
        start = (
            street.ROAD_LEFT_X - PEDESTRIAN_SIDEWALK_M
            if direction > 0
            else street.ROAD_RIGHT_X + PEDESTRIAN_SIDEWALK_M
        )
        colors = tuple(
            palette[int(rng.integers(len(palette)))]
            for palette in (SHIRT_COLORS, TROUSER_COLORS, SKIN_COLORS)
        )
        return Pedestrian(
            ident=self._next_id,
            z=self.light_z + street.PEDESTRIAN_WALK_OFFSET + float(rng.uniform(-0.8, 0.8)),
            x=start,
            direction=direction,
            speed=float(rng.uniform(*PEDESTRIAN_SPEED_RANGE)),
            wait_s=float(rng.uniform(*PEDESTRIAN_WAIT_RANGE_S)),
            colors=colors,
        )

    def _warm_up_pedestrians(self) -> None:
        """Let the stream of pedestrians run for a while before the clip starts (steady state at t=0)."""
        self._next_pedestrian_t = -PEDESTRIAN_WARM_UP_S
        steps = round(PEDESTRIAN_WARM_UP_S / PEDESTRIAN_WARM_UP_STEP_S)
        for index in range(steps):
            self._step_pedestrians(PEDESTRIAN_WARM_UP_STEP_S)
            self._spawn_pedestrian(-PEDESTRIAN_WARM_UP_S + (index + 1) * PEDESTRIAN_WARM_UP_STEP_S)

    def _step_pedestrians(self, dt: float) -> None:
        busy = self._crosswalk_busy()
        for person in self.pedestrians:
            self._step_pedestrian(person, dt, busy)
        self.pedestrians = [p for p in self.pedestrians if (p.end_x - p.x) * p.direction > 0]

    def _spawn_pedestrian(self, t: float) -> None:
        if t < self._next_pedestrian_t:
            return
        if len(self.pedestrians) < MAX_PEDESTRIANS:
            self.pedestrians.append(self._new_pedestrian())
        self._next_pedestrian_t = t + float(self.rng_people.uniform(*PEDESTRIAN_GAP_RANGE_S))
