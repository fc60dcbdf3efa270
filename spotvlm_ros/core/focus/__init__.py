"""Visual Focus: keyframe buffer, region propagation, steering views and visual token counting."""

from .frame_buffer import FrameBuffer
from .propagation import PROPAGATION_MODES, PropagatedRegion, RegionPropagator
from .tokens import VisualTokenSpec, model_input_size, smart_resize, visual_tokens
from .visual_focus import FocusView, ViewCost, VisualFocus, cheapest_view

__all__ = [
    "PROPAGATION_MODES",
    "FocusView",
    "FrameBuffer",
    "PropagatedRegion",
    "RegionPropagator",
    "ViewCost",
    "VisualFocus",
    "VisualTokenSpec",
    "cheapest_view",
    "model_input_size",
    "smart_resize",
    "visual_tokens",
]
