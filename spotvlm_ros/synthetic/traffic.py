"""Cars of the synthetic world: where they come from, how fast they drive, where they stop and leave.

Traffic follows the junction's signal. On green, oncoming cars come from far down the road, through the
junction and past the ego; on red they queue at their stop line while cross traffic passes and cars turn
in from the cross street. Cars yield to pedestrians on the crosswalk, keep their distance to the car
ahead, and a car ahead of the ego turns off into the cross street (yielding to oncoming cars when it
turns left). The number of cars aims at the clip's traffic level; spawns enter from outside the view or
far away, and cars leave through the image border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import street
from .camera import NEAR_M, Camera
from .signal import GREEN, RED

LEAD_SPEED_RANGE = (3.5, 5.0)
ONCOMING_SPEED_RANGE = (5.0, 7.0)
TURN_IN_SPEED_RANGE = (3.0, 4.5)
CROSS_SPEED_RANGE = (6.0, 9.0)
ACCEL = 2.0
COMFORT_DECEL = 2.5
MAX_DECEL = 4.0
STOP_TOLERANCE_M = 0.5
STANDING_SPEED = 0.3
FOLLOW_GAP_M = 2.0
SPAWN_RATE_PER_S = 1.5
SPAWN_GAP_S = 1.0
ONCOMING_SPAWN_AHEAD_M = 45.0  # beyond the light, where oncoming cars appear
ONCOMING_SPAWN_SPACING_M = 20.0  # a new oncoming car waits until the previous one is this far on
ONCOMING_STOP_OFFSET_M = 0.5  # oncoming stop line, beyond the light
MAX_ONCOMING = 3  # straight oncoming cars at once
MAX_UNSEEN_S = 12.0
# Oncoming cars within these z windows (around where the turn crosses or joins their lane) make a car
# turning left wait before it turns.
LEFT_TURN_CONFLICT_M = (-6.0, 26.0)  # up to the oncoming stop line, where cars wait for green
TURN_IN_CONFLICT_M = (-3.0, 20.0)
LANE_HALF_M = street.LANE_WIDTH_M / 2.0
ENTRY_CLEAR_M = 12.0  # a car entering a cross-street lane waits until the previous one is this far in

CAR_COLORS = (
    (200, 30, 35),
    (30, 70, 170),
    (230, 230, 225),
    (40, 40, 45),
    (150, 155, 160),
    (20, 110, 60),
    (205, 145, 30),
    (110, 60, 30),
)


@dataclass
class Car:
    """A car driving along a path; ``speed`` follows ``free_speed`` within what its stops allow."""

    ident: int
    kind: str  # lead | oncoming | turn_in | cross
    path: street.Path
    free_speed: float
    color: tuple[int, int, int]
    speed: float = 0.0
    u: float = 0.0
    seen: bool = False
    age_s: float = 0.0
    stopped_s: float = 0.0  # how long it has been standing
    yield_u: float = -1.0  # path position where it waits while oncoming cars are in ``yield_window``
    yield_window: tuple[float, float] = (0.0, 0.0)  # world z range

    def pose(self) -> street.Pose:
        return self.path.pose(self.u)


@dataclass(frozen=True, slots=True)
class RoadState:
    """What drivers react to at one instant."""

    t: float
    light_state: str
    light_remaining_s: float
    light_z: float
    ego_z: float
    pedestrian_ahead: bool  # someone on (or about to step onto) the crosswalk in front of the oncoming lane


def car_corners(pose: street.Pose, ego_z: float) -> tuple[np.ndarray, np.ndarray]:
    """Ego-relative (x, z) of the car's four footprint corners."""
    half_w, half_l = street.CAR_WIDTH_M / 2.0, street.CAR_LENGTH_M / 2.0
    lx = np.array([-half_w, half_w, half_w, -half_w])
    lz = np.array([-half_l, -half_l, half_l, half_l])
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    return pose.x + lx * c + lz * s, pose.z - ego_z - lx * s + lz * c


def in_oncoming_lane(pose: street.Pose) -> bool:
    """Driving towards the ego in the oncoming lane (not still turning into it)."""
    return abs(pose.x - street.ONCOMING_LANE_X) < 0.3 and math.cos(pose.yaw) < -0.99


def _lane_obstacle_z(other: street.Pose, pose: street.Pose) -> float | None:
    """Nearest z of a car ahead of ``pose`` that covers part of the oncoming lane (or None).

    That is a car in the lane, or one turning or driving across it.
    """
    xs, zs = car_corners(other, 0.0)
    lane_low, lane_high = street.ONCOMING_LANE_X - LANE_HALF_M, street.ONCOMING_LANE_X + LANE_HALF_M
    if zs.max() >= pose.z or xs.max() < lane_low or xs.min() > lane_high:
        return None
    return float(zs.max())


def _stop_speed(gap: float) -> float:
    return math.sqrt(2.0 * COMFORT_DECEL * max(gap, 0.0))


class Traffic:
    """The cars of one clip and their seeded behaviour."""

    def __init__(self, rng: np.random.Generator, camera: Camera, target: int, light_z: float) -> None:
        self.rng = rng
        self.camera = camera
        self.target = target
        self.light_z = light_z
        self.speeds = {
            "lead": float(rng.uniform(*LEAD_SPEED_RANGE)),
            "oncoming": float(rng.uniform(*ONCOMING_SPEED_RANGE)),
            "turn_in": float(rng.uniform(*TURN_IN_SPEED_RANGE)),
            "cross": float(rng.uniform(*CROSS_SPEED_RANGE)),
        }
        self.cars: list[Car] = []
        self._next_id = 0
        self._last_spawn_t = -1e9

    # ----------------------------------------------------------------- creation
    def _new_car(self, kind: str, path: street.Path, u: float = 0.0) -> Car:
        self._next_id += 1
        color = CAR_COLORS[int(self.rng.integers(len(CAR_COLORS)))]
        speed = self.speeds[kind]
        return Car(self._next_id, kind, path, speed, color, speed=speed, u=u)

    def _lead(self, start_z: float, right: bool) -> Car:
        car = self._new_car("lead", street.lead_path(start_z, self.light_z, right, exit_distance=60.0))
        if not right:  # a left turn crosses the oncoming lane
            turn_z = street.lead_turn_start(self.light_z, right=False)
            car.yield_u = car.path.segments[0].length
            car.yield_window = (turn_z + LEFT_TURN_CONFLICT_M[0], turn_z + LEFT_TURN_CONFLICT_M[1])
        return car

    def _turn_in(self, start_x: float) -> Car:
        car = self._new_car("turn_in", street.turn_in_path(self.light_z, start_x, length=80.0))
        merge_z = street.turn_in_merge_z(self.light_z)
        car.yield_u = car.path.segments[0].length
        car.yield_window = (merge_z + TURN_IN_CONFLICT_M[0], merge_z + TURN_IN_CONFLICT_M[1])
        return car

    def _edge_x(self, z_world: float, ego_z: float) -> float:
        """Just outside the view at world position ``z_world``, for a car entering sideways."""
        return self.camera.half_width_at(max(z_world - ego_z, 1.0)) + street.CAR_LENGTH_M / 2.0 + 0.5

    def place_initial(self, road: RoadState) -> None:
        """Cars already on the road at the clip start, as many as the traffic level (where they fit)."""
        rng, lz, ego = self.rng, self.light_z, road.ego_z
        candidates: list[Car] = []
        z = ego + float(rng.uniform(9.0, 16.0))
        right = z < street.lead_turn_start(lz, right=True) - 1.5
        if right or z < street.lead_turn_start(lz, right=False) - 1.5:
            candidates.append(self._lead(z, right))
        z = lz + float(rng.uniform(4.5, ONCOMING_SPAWN_AHEAD_M))  # clear of the crosswalk
        candidates.append(self._new_car("oncoming", street.oncoming_path(z, length=z - ego + 40.0)))
        if road.light_state == RED and not any(c.kind == "lead" for c in candidates):
            x = street.ONCOMING_LANE_X + street.TURN_IN_RADIUS_M + float(rng.uniform(0.0, 6.0))
            candidates.append(self._turn_in(x))
            half = self._edge_x(lz + street.CROSS_LANE_PLUS_X, ego)
            path = street.cross_path(lz, to_right=True, half_width=half)
            if road.light_remaining_s > 0.6 * path.length / self.speeds["cross"] + 1.0:
                candidates.append(self._new_car("cross", path, u=0.4 * path.length))
        order = rng.permutation(len(candidates))
        self.cars = [candidates[i] for i in order[: self.target]]

    def spawn(self, road: RoadState, dt: float) -> None:
        """Maybe bring in a car (from far down the road, or sideways from the cross street)."""
        draw = float(self.rng.random())
        if len(self.cars) >= self.target or road.t - self._last_spawn_t < SPAWN_GAP_S:
            return
        if draw >= SPAWN_RATE_PER_S * dt:
            return
        lz, ego = self.light_z, road.ego_z
        poses = [car.pose() for car in self.cars]
        spawn_z = lz + ONCOMING_SPAWN_AHEAD_M
        # The oncoming road is held by the signal on red and leaves room for cars from the cross street.
        kinds = []
        oncoming = [p for c, p in zip(self.cars, poses, strict=True) if c.kind == "oncoming"]
        spaced = all(p.z < spawn_z - ONCOMING_SPAWN_SPACING_M for p in oncoming)
        if road.light_state != RED and spaced and len(oncoming) < MAX_ONCOMING:
            kinds.append("oncoming")
        half_right = self._edge_x(lz + street.CROSS_LANE_PLUS_X, ego)
        half_left = self._edge_x(lz + street.CROSS_LANE_MINUS_X, ego)
        if road.light_state == RED:  # the cross street has green: straight through, or left into our road
            junction_clear = not any(
                in_oncoming_lane(p) and lz + street.CROSS_STREET[0] - 2.0 < p.z < lz + 2.0 for p in poses
            )
            turning = any(c.kind == "turn_in" for c in self.cars)
            crossing = [c for c in self.cars if c.kind == "cross"]
            leading = any(c.kind == "lead" for c in self.cars)
            if junction_clear and not turning and not leading:
                if road.light_remaining_s > 2.0 * half_right / self.speeds["cross"] + 1.0:
                    kinds.append("cross_right")
                if road.light_remaining_s > 2.0 * half_left / self.speeds["cross"] + 1.0:
                    kinds.append("cross_left")
            entering = any(c.kind == "turn_in" and c.u < ENTRY_CLEAR_M for c in self.cars)
            if not crossing and not leading and not entering:
                kinds.append("turn_in")
        if not kinds:
            return
        kind = kinds[int(self.rng.integers(len(kinds)))]
        if kind == "oncoming":
            car = self._new_car("oncoming", street.oncoming_path(spawn_z, length=spawn_z - ego + 40.0))
        elif kind == "turn_in":
            car = self._turn_in(half_left)
        else:
            to_right = kind == "cross_right"
            half = half_right if to_right else half_left
            car = self._new_car("cross", street.cross_path(lz, to_right, half_width=half))
        self.cars.append(car)
        self._last_spawn_t = road.t

    # ----------------------------------------------------------------- driving
    def step(self, road: RoadState, dt: float) -> None:
        """Move every car, then drop those that left the view."""
        poses = [car.pose() for car in self.cars]
        targets = [
            self._target_speed(car, pose, poses, road) for car, pose in zip(self.cars, poses, strict=True)
        ]
        for car, target in zip(self.cars, targets, strict=True):
            change = float(np.clip(target - car.speed, -MAX_DECEL * dt, ACCEL * dt))
            car.speed = max(car.speed + change, 0.0)
            car.u += car.speed * dt
            car.age_s += dt
            car.stopped_s = car.stopped_s + dt if car.speed < STANDING_SPEED else 0.0
        self.cars = [car for car in self.cars if self._keep(car, road.ego_z)]

    def _target_speed(self, car: Car, pose: street.Pose, poses: list[street.Pose], road: RoadState) -> float:
        limit = car.free_speed
        if in_oncoming_lane(pose):
            front = pose.z - street.CAR_LENGTH_M / 2.0
            lines = []
            if road.light_state != GREEN:
                lines.append((self.light_z + ONCOMING_STOP_OFFSET_M, road.light_state == RED))
            if road.pedestrian_ahead:
                lines.append((self.light_z + street.FAR_CROSSWALK[1] + 0.5, True))
            for line, must in lines:
                gap = front - line
                if gap > -STOP_TOLERANCE_M and (
                    must or car.speed**2 / (2 * MAX_DECEL) <= gap + STOP_TOLERANCE_M
                ):
                    limit = min(limit, _stop_speed(gap))
            ahead = [_lane_obstacle_z(p, pose) for p in poses if p is not pose]
            ahead = [z for z in ahead if z is not None]
            if ahead:
                limit = min(limit, _stop_speed(front - max(ahead) - FOLLOW_GAP_M))
        elif car.yield_u >= 0.0 and car.u < car.yield_u + STOP_TOLERANCE_M:
            low, high = car.yield_window
            if any(in_oncoming_lane(p) and low < p.z < high for p in poses):
                limit = min(limit, _stop_speed(car.yield_u - car.u))
        return limit

    def _keep(self, car: Car, ego_z: float) -> bool:
        xs, zs = car_corners(car.pose(), ego_z)
        front = zs > NEAR_M
        if not front.any():
            return False
        cam = self.camera
        xs, zs = xs[front], zs[front]
        top = np.full_like(xs, street.CAR_HEIGHT_M)
        px, py = cam.project(
            np.concatenate([xs, xs]), np.concatenate([np.zeros_like(xs), top]), np.tile(zs, 2)
        )
        in_view = bool(px.max() > 0 and px.min() < cam.width and py.max() > 0 and py.min() < cam.height)
        car.seen = car.seen or in_view
        return in_view or (not car.seen and car.age_s < MAX_UNSEEN_S)
