"""[run]: the adaptive concurrency and batching keys, as a user writes them."""
from __future__ import annotations

from pathlib import Path

import pytest

from bulkmeet.config import ConfigError, load_config

MAPPING = """\
[mapping]
organizer = "Teacher"
subject = "{Course}: {Title}"
keys = ["CRN", "Date"]
"""


def load(tmp_path: Path, run: str):
    path = tmp_path / "bulkmeet.toml"
    path.write_text(MAPPING + "\n[run]\n" + run, encoding="utf-8")
    return load_config(path)


def test_defaults_start_at_4_grow_to_32_and_do_not_batch(tmp_path):
    cfg = load(tmp_path, "")
    assert (cfg.run.concurrency, cfg.run.max_concurrency, cfg.run.batch) == (4, 32, False)


def test_a_fixed_concurrency_and_batching_are_one_line_each(tmp_path):
    cfg = load(tmp_path, "concurrency = 8\nmax_concurrency = 8\nbatch = true\n")
    assert (cfg.run.concurrency, cfg.run.max_concurrency, cfg.run.batch) == (8, 8, True)


def test_an_impossible_max_concurrency_is_refused_with_its_value(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "max_concurrency = 0\n")
    assert str(err.value).endswith("[run] max_concurrency must be between 1 and 256 (it is 0).")
    with pytest.raises(ConfigError) as err:
        load(tmp_path, 'batch = "yes"\n')
    assert "[run] batch must be" in str(err.value)
