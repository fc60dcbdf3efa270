"""One factor for every wall-clock limit in the tests: ``SPOTVLM_TEST_TIME_SCALE`` (default 1).

Limits are there to end a hung test, never to decide a race; a slow or busy machine raises the factor.
"""

from __future__ import annotations

import os

TIME_SCALE = float(os.environ.get("SPOTVLM_TEST_TIME_SCALE", "1"))
if TIME_SCALE <= 0:
    raise ValueError(f"SPOTVLM_TEST_TIME_SCALE must be > 0, got {TIME_SCALE}")


def scaled(seconds: float) -> float:
    """``seconds`` times the test time scale."""
    return seconds * TIME_SCALE
