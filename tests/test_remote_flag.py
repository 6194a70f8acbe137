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

from core import fv, layer_sweep
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
    layer_sweep.accuracy_sweep(
        lm, prompts.zero_shot, prompts.targets, [(l, stats.hvector[l]) for l in range(lm.arch.n_layers)]
    )
    assert torch.isfinite(at.cie).all()
    assert len(rec.calls) >= 5
    assert all(remote is True for _, remote in rec.calls), rec.calls


def test_guard_catches_a_bypass(remote_lm):
    """The test above could fail: a direct forward is caught."""
    lm, _ = remote_lm
    with pytest.raises(AssertionError, match="outside nnsight"):
        lm.hf(input_ids=torch.tensor([[1, 2, 3]]))


def test_function_vector_and_decoding_run_as_traces(remote_lm, tokenizer):
    """Building a function vector and decoding a vector read no weights here: one remote trace
    each, with the same result as the local model (same seed, same weights)."""
    lm, rec = remote_lm
    local = build_tiny("llama", tokenizer)
    arch = lm.arch
    for module in (lm.hf.get_output_embeddings(), lm.hf.model.norm):  # a direct call would bypass nnsight
        module.register_forward_pre_hook(
            lambda *_: None if _under_nnsight() else pytest.fail("a module ran outside nnsight")
        )
    mean_heads = torch.randn(arch.n_layers, arch.n_heads, arch.d_head, generator=torch.Generator().manual_seed(3))
    heads = [(0, 1), (2, 3), (2, 0)]
    n = len(rec.calls)
    v = fv.function_vector_values(lm, mean_heads, heads)
    assert rec.calls[n:] == [("trace", True)]
    torch.testing.assert_close(v, fv.function_vector_values(local, mean_heads, heads), atol=1e-6, rtol=0)
    n = len(rec.calls)
    top = fv.decode_vector(lm, v, 5)
    assert rec.calls[n:] == [("trace", True)]
    assert [t for t, _ in top] == [t for t, _ in fv.decode_vector(local, v, 5)]


def test_attention_patterns_need_local_weights(remote_lm):
    """Eager attention cannot be switched on a remote model: a clear message, no network."""
    from core.attention import attention_pattern
    from core.errors import UserInputError

    lm, rec = remote_lm
    with pytest.raises(UserInputError, match="needs the model's weights on this machine"):
        attention_pattern(lm, "hello world", 0)
    assert rec.calls == []
