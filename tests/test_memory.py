"""Memory stays bounded: the shared result store's limits, and a long session of 20 cycles.

The store (dashboard.compute) keeps at most core.limits.MAX_CACHED_RESULTS results and
MAX_CACHE_MB of tensors, dropping the least recently used. The slow test drives the real app
(AppTest, default model) through 20 cycles of new work with bench/memory.py and checks that
the floor of resident memory stops rising once the store is full; `make bench` reports the same figures.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

from core import limits
from dashboard.store import ResultStore, nbytes

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Result:
    values: torch.Tensor
    note: str


def test_nbytes_counts_tensors_once():
    t = torch.zeros(1000, dtype=torch.float32)  # 4000 bytes
    assert nbytes(t) == 4000
    assert nbytes(Result(t, "abc")) == 4003
    assert nbytes({"a": t, "b": [t, t]}) == 4000 + 2  # shared tensor once, plus the two keys
    assert nbytes((torch.zeros(10, dtype=torch.float16), torch.zeros(3, 4, dtype=torch.int64))) == 20 + 96


def test_store_keeps_the_newest_within_count_and_bytes():
    made: list[str] = []

    def make(name: str, n: int):
        def f():
            made.append(name)
            return torch.zeros(n, dtype=torch.uint8)

        return f

    s = ResultStore(max_entries=3, max_bytes=250)
    for i in range(4):
        s.get((i,), make(f"r{i}", 50))
    assert len(s) == 3 and list(s.data) == [(1,), (2,), (3,)]  # by count: the oldest went
    s.get((1,), make("again", 50))  # a hit: moved to the end, not recomputed
    assert made == ["r0", "r1", "r2", "r3"]
    s.get((9,), make("big", 200))  # 200 + 50 (key 1) fits, key 2 and 3 go first
    assert list(s.data) == [(1,), (9,)] and s.bytes == 250
    huge = s.get((10,), make("huge", 1000))  # larger than the budget: kept alone, shown once
    assert huge.numel() == 1000 and list(s.data) == [(10,)]


def test_the_limits_are_shown_in_the_ui_table():
    rows = dict(limits.as_table())
    assert rows["results kept in memory (all users)"] == f"{limits.MAX_CACHED_RESULTS} or {limits.MAX_CACHE_MB} MiB"


@pytest.mark.slow
def test_twenty_cycles_of_new_work_keep_memory_bounded(tmp_path):
    sys.path.insert(0, str(ROOT))
    from bench.memory import cycles, summary

    records = cycles(20, n_prompts=4, n_shots=3, data_dir=str(tmp_path))
    s = summary(records)
    print("\n20 cycles:", s)
    assert len(records) == 20
    assert s["store_entries_max"] <= limits.MAX_CACHED_RESULTS
    assert s["store_mb_max"] <= limits.MAX_CACHE_MB
    # every cycle adds eight results; from cycle 6 the store evicts as many as it adds, so the
    # floor of resident memory must stay level from the second to the last quarter (keeping a
    # model copy, or one run's activations at every layer and position, about 130 MiB, per
    # cycle would raise it by 1 GiB or more over those ten cycles)
    assert records[-1]["store_entries"] == limits.MAX_CACHED_RESULTS or s["store_mb_max"] > limits.MAX_CACHE_MB * 0.9
    assert s["growth_mb"] < 150, s
