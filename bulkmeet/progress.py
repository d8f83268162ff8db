"""Progress reporters: what the pipeline calls as rows finish; the CLI chooses which one.

The pipeline never looks at terminals (as httpie's core is handed an ``Environment``): the CLI
builds a reporter with ``for_stream`` and hands it in. On a terminal it is a tqdm bar; under cron
it is a log line at most every 30 s, never a bar in the mail; tests and library callers get
``NoProgress`` by default.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import IO, Protocol

log = logging.getLogger(__name__)

LOG_EVERY_S = 30.0


class Progress(Protocol):
    """Called from worker threads: implementations must be thread-safe."""

    def start(self, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def start(self, total: int) -> None:
        return None

    def advance(self, n: int = 1) -> None:
        return None

    def close(self) -> None:
        return None


class LogProgress:
    """'120 of 4000 rows sent (3%)' at most every ``every`` seconds."""

    def __init__(self, every: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.every = every
        self.total = 0
        self.done = 0
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def start(self, total: int) -> None:
        with self._lock:
            self.total, self.done, self._last = total, 0, self._clock()

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            if self._clock() - self._last >= self.every:
                log.info("%d of %d rows sent (%d%%)", self.done, self.total,
                         100 * self.done // max(self.total, 1))
                self._last = self._clock()

    def close(self) -> None:
        return None


class BarProgress:
    """A tqdm bar on ``stream`` (a terminal), removed when the run ends."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._bar = None
        self._lock = threading.Lock()

    def start(self, total: int) -> None:
        from tqdm import tqdm

        with self._lock:
            if total:
                self._bar = tqdm(total=total, unit="row", desc="meetings", file=self.stream,
                                 dynamic_ncols=True, leave=False)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.update(n)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None


def for_stream(stream: IO[str], enabled: bool | None = None) -> Progress:
    """A bar when ``enabled`` (None: when ``stream`` is a terminal), else periodic log lines."""
    use_bar = stream.isatty() if enabled is None else enabled
    return BarProgress(stream) if use_bar else LogProgress()
