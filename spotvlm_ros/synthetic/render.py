"""Projecting the scene (the geometry the ground truth reads) and painting it into frames."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..core.types import Box
from .backdrop import Backdrop
from .camera import Camera
from .ground import GroundRenderer, build_texture
from .people import Figure, draw_figure, figure
from .props import (
    Grove,
    LightMount,
    LightView,
    draw_light,
    draw_markings,
    draw_tree,
    light_view,
)
from .scene import Scene
from .signs import SignView, draw_sign, sign_view
from .vehicles import car_box, draw_car

NOISE_VARIANTS = 3
NOISE_LEVELS = 5  # sensor noise: difference of two uniform draws in [0, NOISE_LEVELS)


@dataclass(frozen=True, slots=True)
class SceneObject:
    """A car or pedestrian as projected into the frame (``box`` in pixel-edge coordinates, unclipped)."""

    kind: str  # "car" | "pedestrian"
    ident: int
    depth: float  # metres ahead of the camera
    box: Box
    crossing: bool = False


@dataclass(frozen=True, slots=True)
class FrameLayout:
    """Everything projected for one frame: the light, the objects, the pedestrians' figures."""

    light: LightView
    objects: tuple[SceneObject, ...]
    figures: dict[int, Figure]
    sign: SignView | None = None


def layout_frame(scene: Scene, mount: LightMount, cam: Camera) -> FrameLayout:
    """Project the light, the cars and the pedestrians of the scene's current state."""
    objects = []
    for car in scene.cars:
        pose = car.pose()
        box = car_box(pose, scene.ego_z, cam)
        if box is not None:
            objects.append(SceneObject("car", car.ident, pose.z - scene.ego_z, box))
    figures = {}
    for person in scene.pedestrians:
        fig = figure(person, scene.ego_z, cam)
        if fig is not None:
            figures[person.ident] = fig
            objects.append(
                SceneObject("pedestrian", person.ident, person.z - scene.ego_z, fig.box, person.crossing)
            )
    sign = sign_view(scene.signs, scene.odometer, cam) if scene.signs is not None else None
    return FrameLayout(light_view(mount, scene.light_distance, cam), tuple(objects), figures, sign)


class Painter:
    """Paints one clip's frames; its seeded look: ground texture, scenery, trees and sensor noise."""

    def __init__(self, camera: Camera, seed_sequence: np.random.SeedSequence, light_z: float) -> None:
        rng_ground, rng_backdrop, rng_trees, rng_noise = (
            np.random.default_rng(s) for s in seed_sequence.spawn(4)
        )
        self.camera = camera
        self.ground = GroundRenderer(camera, build_texture(rng_ground))
        self.backdrop = Backdrop(camera, rng_backdrop, rows=self.ground.first_row)
        self.grove = Grove(rng_trees, light_z)
        shape = (camera.height, camera.width, 3)
        self.noise = []
        for _ in range(NOISE_VARIANTS):
            signed = rng_noise.integers(0, NOISE_LEVELS, shape, np.int16) - rng_noise.integers(
                0, NOISE_LEVELS, shape, np.int16
            )
            self.noise.append(
                (np.maximum(signed, 0).astype(np.uint8), np.maximum(-signed, 0).astype(np.uint8))
            )

    def paint(self, scene: Scene, layout: FrameLayout, index: int) -> np.ndarray:
        """The RGB frame of the scene's current state (``index`` picks the sensor-noise pattern)."""
        cam = self.camera
        img = np.empty((cam.height, cam.width, 3), np.uint8)
        self.backdrop.render(img, scene.ego_z)
        self.ground.render(img, scene.ego_z, scene.light_distance)
        draw_markings(img, scene.light_distance, cam)
        drawables = [(view[0], "tree", view) for view in self.grove.views(scene.ego_z, cam)]
        drawables.append((scene.light_distance, "light", None))
        cars = {car.ident: car for car in scene.cars}
        drawables += [(obj.depth, obj.kind, obj.ident) for obj in layout.objects]
        if layout.sign is not None:
            drawables.append((layout.sign.distance, "sign", None))
        for _, kind, item in sorted(drawables, key=lambda d: -d[0]):
            if kind == "tree":
                draw_tree(img, item)
            elif kind == "light":
                draw_light(img, layout.light, scene.light_state, cam)
            elif kind == "sign":
                draw_sign(img, layout.sign)
            elif kind == "car":
                car = cars[item]
                draw_car(img, car.pose(), scene.ego_z, car.color, cam)
            else:
                draw_figure(img, layout.figures[item])
        positive, negative = self.noise[index % NOISE_VARIANTS]
        cv2.add(img, positive, dst=img)
        cv2.subtract(img, negative, dst=img)
        return img
