"""Fixed geometry of the synthetic street and the paths vehicles drive along.

The ego drives in the right lane of a two-lane road (right-hand traffic) towards a wide junction. The
traffic light stands at the far corner of the junction, beyond the crosswalk that pedestrians use. Positions
along the road (``z``) of junction parts are given relative to the light (``z = light_z + offset``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LANE_WIDTH_M = 3.5
EGO_LANE_X = 0.0
ONCOMING_LANE_X = -LANE_WIDTH_M
ROAD_LEFT_X = ONCOMING_LANE_X - LANE_WIDTH_M / 2.0  # left kerb
ROAD_RIGHT_X = EGO_LANE_X + LANE_WIDTH_M / 2.0  # right kerb
SIDEWALK_WIDTH_M = 3.0
CENTER_LINE_X = (EGO_LANE_X + ONCOMING_LANE_X) / 2.0
DASH_PERIOD_M = 7.0  # centre-line dash period; the ground texture repeats every two periods
DASH_LENGTH_M = 3.0

# Junction parts, as (near, far) offsets from the light along z.
STOP_LINE = (-32.9, -32.5)
NEAR_CROSSWALK = (-31.8, -28.8)
CROSS_STREET = (-26.0, -8.0)
FAR_CROSSWALK = (-6.0, -2.5)
CROSS_CENTER_OFFSET = -17.0  # centre line of the cross street
CROSS_LANE_PLUS_X = -19.25  # cross-street lane carrying traffic to the right (+x), near half
CROSS_LANE_MINUS_X = -14.75  # lane carrying traffic to the left (-x), far half
RIGHT_TURN_LANE = -23.75  # outer near lane, where right-turning cars end up
LEFT_TURN_LANE = -10.25  # outer far lane, where left-turning cars end up
PEDESTRIAN_WALK_OFFSET = (FAR_CROSSWALK[0] + FAR_CROSSWALK[1]) / 2.0

# The light stays between these distances (its lit lamp keeps the size the resolution spec asks for):
# the ego stops for red with the light at STOP_DISTANCE_M, and after it crosses the junction the
# approach wraps back by WRAP_M (a whole number of texture periods, so road markings stay continuous).
LIGHT_NEAR_M = 32.0
WRAP_M = 2 * DASH_PERIOD_M
LIGHT_FAR_M = LIGHT_NEAR_M + WRAP_M
STOP_DISTANCE_M = -STOP_LINE[1] + 0.5
LIGHT_POLE_X = ROAD_RIGHT_X + 1.5
LAMP_DIAMETER_M = 0.48

RIGHT_TURN_RADIUS_M = 5.0
LEFT_TURN_RADIUS_M = 8.0
TURN_IN_RADIUS_M = 6.0

CAR_LENGTH_M = 4.4
CAR_WIDTH_M = 1.8
CAR_HEIGHT_M = 1.45


@dataclass(frozen=True, slots=True)
class Pose:
    """Position on the road plane and heading (0 = +z, pi/2 = +x)."""

    x: float
    z: float
    yaw: float


@dataclass(frozen=True, slots=True)
class Segment:
    """A straight piece (``curvature`` 0) or a circular arc (signed: positive turns right)."""

    start: Pose
    length: float
    curvature: float = 0.0

    def pose(self, u: float) -> Pose:
        """The pose ``u`` metres along the segment."""
        s = self.start
        if self.curvature == 0.0:
            return Pose(s.x + u * math.sin(s.yaw), s.z + u * math.cos(s.yaw), s.yaw)
        radius = 1.0 / self.curvature  # signed
        yaw = s.yaw + u * self.curvature
        # Centre of the arc lies to the right of the start for a right turn (radius > 0).
        cx, cz = s.x + radius * math.cos(s.yaw), s.z - radius * math.sin(s.yaw)
        return Pose(cx - radius * math.cos(yaw), cz + radius * math.sin(yaw), yaw)

    @property
    def end(self) -> Pose:
        return self.pose(self.length)


class Path:
    """A drivable path: straight pieces and arcs joined end to end."""

    def __init__(self, start: Pose) -> None:
        self.segments: list[Segment] = []
        self._end = start
        self.length = 0.0

    def straight(self, length: float) -> Path:
        """Append a straight piece of ``length`` metres."""
        return self._append(Segment(self._end, length))

    def turn(self, radius: float, right: bool) -> Path:
        """Append a quarter circle of ``radius`` metres to the right or the left."""
        curvature = (1.0 if right else -1.0) / radius
        return self._append(Segment(self._end, radius * math.pi / 2.0, curvature))

    def _append(self, segment: Segment) -> Path:
        self.segments.append(segment)
        self._end = segment.end
        self.length += segment.length
        return self

    def pose(self, u: float) -> Pose:
        """The pose ``u`` metres along the path (extrapolated straight beyond its end)."""
        for segment in self.segments:
            if u <= segment.length:
                return segment.pose(max(u, 0.0))
            u -= segment.length
        end = self._end
        return Segment(end, u).pose(u)


def lead_path(start_z: float, light_z: float, right: bool, exit_distance: float) -> Path:
    """Ego-lane car ahead: drives on and turns off into the cross street, leaving the view sideways."""
    radius = RIGHT_TURN_RADIUS_M if right else LEFT_TURN_RADIUS_M
    path = Path(Pose(EGO_LANE_X, start_z, 0.0)).straight(max(lead_turn_start(light_z, right) - start_z, 0.0))
    return path.turn(radius, right).straight(exit_distance)


def lead_turn_start(light_z: float, right: bool) -> float:
    """Where along z an ego-lane car starts turning right or left into the cross street."""
    if right:
        return light_z + RIGHT_TURN_LANE - RIGHT_TURN_RADIUS_M
    return light_z + LEFT_TURN_LANE - LEFT_TURN_RADIUS_M


def oncoming_path(start_z: float, length: float) -> Path:
    """Oncoming lane, driving towards (and past) the ego."""
    return Path(Pose(ONCOMING_LANE_X, start_z, math.pi)).straight(length)


def turn_in_merge_z(light_z: float) -> float:
    """Where a car turning in from the cross street settles in the oncoming lane."""
    return light_z + CROSS_LANE_MINUS_X - TURN_IN_RADIUS_M


def turn_in_path(light_z: float, start_x: float, length: float) -> Path:
    """From the cross street (entering from the right), turning left into the oncoming lane."""
    turn_x = ONCOMING_LANE_X + TURN_IN_RADIUS_M
    path = Path(Pose(start_x, light_z + CROSS_LANE_MINUS_X, -math.pi / 2.0)).straight(
        max(start_x - turn_x, 0.0)
    )
    return path.turn(TURN_IN_RADIUS_M, right=False).straight(length)


def cross_path(light_z: float, to_right: bool, half_width: float) -> Path:
    """Straight through the junction along the cross street, from one side of the view to the other."""
    if to_right:
        return Path(Pose(-half_width, light_z + CROSS_LANE_PLUS_X, math.pi / 2.0)).straight(2 * half_width)
    return Path(Pose(half_width, light_z + CROSS_LANE_MINUS_X, -math.pi / 2.0)).straight(2 * half_width)
