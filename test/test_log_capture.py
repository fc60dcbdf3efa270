"""The ``log_records`` capture sees the ``spotvlm`` loggers when another package stopped their propagation.

``NonPropagatingLogger`` is a test double of ``launch.logging.LaunchLogger``, the logger class that ROS 2's
``launch`` pytest plugins install (its loggers set ``propagate = False``), which is what hides records from
pytest's ``caplog`` inside a sourced ROS 2 workspace.
"""

from __future__ import annotations

import logging
import uuid

import pytest
from log_capture import LogCapture


class NonPropagatingLogger(logging.Logger):
    """Test double of launch's LaunchLogger: a logger class whose loggers do not propagate."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.propagate = False


class RootListener(logging.Handler):
    """What caplog does: listen on the root logger."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def launch_like_logging():
    previous = logging.getLoggerClass()
    logging.setLoggerClass(NonPropagatingLogger)
    root_listener = RootListener()
    logging.getLogger().addHandler(root_listener)
    yield root_listener
    logging.getLogger().removeHandler(root_listener)
    logging.setLoggerClass(previous)


def _name() -> str:
    return f"spotvlm.capture_test_{uuid.uuid4().hex[:8]}"


def test_records_of_loggers_made_before_and_during_the_capture(launch_like_logging):
    before = logging.getLogger(_name())
    assert isinstance(before, NonPropagatingLogger) and not before.propagate
    before.warning("seen by nobody")
    assert launch_like_logging.messages == []  # a root listener such as caplog sees nothing
    capture = LogCapture()
    capture.start()
    try:
        capture.set_level(logging.INFO)
        before.info("made before, info")
        before.debug("below the level")
        during = logging.getLogger(_name())
        during.warning("made during, warning")
    finally:
        capture.stop()
    assert capture.messages == ["made before, info", "made during, warning"]
    assert "WARNING spotvlm.capture_test_" in capture.text
    assert before.propagate is False  # the logger's own setting is back after the test


def test_at_level_restores_the_level_and_clear_forgets(log_records):
    logger = logging.getLogger(_name())
    logger.setLevel(logging.WARNING)
    with log_records.at_level(logging.DEBUG, logger=logger.name):
        logger.debug("inside")
    logger.debug("outside")
    assert log_records.messages == ["inside"] and logger.level == logging.WARNING
    log_records.clear()
    assert log_records.records == []
