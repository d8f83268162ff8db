"""Progress reporters: the CLI picks one by the stream; the log reporter is driven by its clock."""
from __future__ import annotations

import io
import logging

from bulkmeet.progress import BarProgress, LogProgress, NoProgress, for_stream


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_log_progress_says_how_far_at_most_every_30_seconds(caplog):
    clock = _Clock()
    progress = LogProgress(clock=clock)
    progress.start(400)
    with caplog.at_level(logging.INFO, logger="bulkmeet.progress"):
        for _ in range(10):
            clock.now += 5
            progress.advance(10)
    assert [r.getMessage() for r in caplog.records] == ["60 of 400 rows sent (15%)"]
    progress.close()


def test_a_pipe_gets_log_lines_and_a_forced_bar_draws_on_the_stream():
    assert isinstance(for_stream(io.StringIO()), LogProgress)
    stream = io.StringIO()
    bar = for_stream(stream, enabled=True)
    assert isinstance(bar, BarProgress)
    bar.start(3)
    bar.advance(3)
    bar.close()
    assert "meetings:" in stream.getvalue() and "0/3" in stream.getvalue()
    NoProgress().advance()
