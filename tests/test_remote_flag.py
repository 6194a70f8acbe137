"""The remote (NDIF) flag reaches every trace and generate, without touching the network.

The nnsight wrapper's ``trace``/``generate`` are replaced by recorders that note the
``remote`` keyword and then run locally; the model's own forward is forbidden outside those
calls, so a computation that bypassed nnsight (like the fast path's prefix cache) would fail.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from conftest import build_tiny
from core import fv
from core.attribution import clean_stats, indirect_effects
from core.predict import predict
from core.prompts import PromptSettings, build_prompts
from core.tasks import validate

pytestmark = pytest.mark.usefixtures("single_thread")

PAIRS = [(f"w{i}", f"v{i}") for i in range(30)]


class Recorder:
    """Stands in for the nnsight model: records `remote`, runs locally."""

    def __init__(self, nn):
        self._nn, self.calls = nn, []

    def __getattr__(self, name):
        return getattr(self._nn, name)

    def trace(self, *args, **kwargs):
        self.calls.append(("trace", kwargs.pop("remote", "missing")))
        return self._nn.trace(*args, **kwargs)

    def generate(self, *args, **kwargs):
        self.calls.append(("generate", kwargs.pop("remote", "missing")))
        return self._nn.generate(*args, **kwargs)


def _under_nnsight() -> bool:
    return any("/nnsight/" in frame.filename for frame in inspect.stack(context=0))


@pytest.fixture
def remote_lm(tokenizer, monkeypatch):
    lm = build_tiny("llama", tokenizer)
    lm.spec = dataclasses.replace(lm.spec, remote=True)
    rec = Recorder(lm.nn)
    lm.nn = rec
    forward = lm.hf.forward

    def guarded(*args, **kwargs):
        if not _under_nnsight():
            raise AssertionError("a forward ran outside nnsight: it would not run remotely")
        return forward(*args, **kwargs)

    monkeypatch.setattr(lm.hf, "forward", guarded)
    return lm, rec


def test_flag_reaches_every_trace(remote_lm):
    lm, rec = remote_lm
    task = validate("toy", PAIRS)
    settings = PromptSettings(n_shots=3, n_prompts=4)
    predict(lm, task, settings)
    prompts = build_prompts(task.pairs, task.pairs, settings)
    stats = clean_stats(lm, prompts)
    at = indirect_effects(lm, prompts, stats.mean_heads, method="fast")  # falls back to the plain path
    fv.accuracy_sweep(lm, prompts.zero_shot, prompts.targets, [(l, stats.hvector[l]) for l in range(lm.arch.n_layers)])
    assert torch.isfinite(at.cie).all()
    assert len(rec.calls) >= 5
    assert all(remote is True for _, remote in rec.calls), rec.calls


def test_guard_catches_a_bypass(remote_lm):
    """The test above could fail: a direct forward is caught."""
    lm, _ = remote_lm
    with pytest.raises(AssertionError, match="outside nnsight"):
        lm.hf(input_ids=torch.tensor([[1, 2, 3]]))
