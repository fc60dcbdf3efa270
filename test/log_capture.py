"""Log capture for the ``spotvlm`` loggers that works whoever configured logging first.

pytest's ``caplog`` listens on the root logger. Inside a sourced ROS 2 workspace, the ``launch`` pytest
plugins install ``launch.logging.LaunchLogger`` as the logger class, whose loggers do not propagate, so
``caplog`` sees nothing of ``spotvlm.*``. This capture hangs its handler on the ``spotvlm`` logger itself
and makes its children propagate to it while a test runs (restored afterwards).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

ROOT = "spotvlm"


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class LogCapture:
    """The records the ``spotvlm`` loggers emitted during one test (an API like caplog's)."""

    def __init__(self) -> None:
        self._handler = _ListHandler()
        self._handler.setFormatter(logging.Formatter("%(levelname)s %(name)s:%(message)s"))
        self._saved: dict[logging.Logger, tuple[bool, int, bool]] = {}
        self._saved_logger_class: type[logging.Logger] | None = None

    @property
    def records(self) -> list[logging.LogRecord]:
        """Every record captured so far."""
        return self._handler.records

    @property
    def messages(self) -> list[str]:
        """The formatted messages of the records."""
        return [record.getMessage() for record in self.records]

    @property
    def text(self) -> str:
        """All records formatted, one a line."""
        return "\n".join(self._handler.format(record) for record in self.records)

    def clear(self) -> None:
        """Forget the records captured so far."""
        self._handler.records.clear()

    def set_level(self, level: int | str, logger: str = ROOT) -> None:
        """Let ``logger`` (a ``spotvlm`` logger) emit from ``level`` on, until the test ends."""
        target = self._remember(logging.getLogger(logger))
        target.setLevel(level)

    @contextlib.contextmanager
    def at_level(self, level: int | str, logger: str = ROOT) -> Iterator[LogCapture]:
        """``set_level`` for the duration of a ``with`` block."""
        target = logging.getLogger(logger)
        previous = target.level
        self.set_level(level, logger)
        try:
            yield self
        finally:
            target.setLevel(previous)

    def start(self) -> None:
        manager = logging.Logger.manager
        self._saved_logger_class = manager.loggerClass
        manager.setLoggerClass(logging.Logger)  # loggers first made during the test propagate
        root = self._remember(logging.getLogger(ROOT))
        root.addHandler(self._handler)
        for name in list(manager.loggerDict):
            if name.startswith(f"{ROOT}."):
                child = self._remember(logging.getLogger(name))
                child.propagate = True
                child.disabled = False

    def stop(self) -> None:
        logging.getLogger(ROOT).removeHandler(self._handler)
        for logger, (propagate, level, disabled) in self._saved.items():
            logger.propagate, logger.disabled = propagate, disabled
            logger.setLevel(level)
        logging.Logger.manager.loggerClass = self._saved_logger_class
        self._saved.clear()

    def _remember(self, logger: logging.Logger) -> logging.Logger:
        self._saved.setdefault(logger, (logger.propagate, logger.level, logger.disabled))
        logger.disabled = False
        return logger
