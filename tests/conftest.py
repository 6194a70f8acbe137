"""Shared fixtures: tiny random models of every supported family, offline.

Each tiny model is built from a config (3 layers, d_model 64, 4 heads of width 16) and
wrapped exactly as the app wraps a real model. Weights are re-drawn at a larger scale than
the Hugging Face default (std 0.02), so that logits are far from uniform and a wrong patch,
a misplaced add or a lost edit moves the scores by much more than the tolerances used.
The tokenizer is the default model's (read from the project's cache; no hub access).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import pytest
import torch

FAMILIES = ("llama", "gpt2", "gptj", "gpt_neox")
D_VOCAB = 49152  # the SmolLM2 tokenizer's vocabulary
N_LAYERS, D_MODEL, N_HEADS = 3, 64, 4


def tiny_config(family: str):
    from transformers import GPT2Config, GPTJConfig, GPTNeoXConfig, LlamaConfig

    special = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}
    if family == "llama":
        return LlamaConfig(
            num_hidden_layers=N_LAYERS,
            hidden_size=D_MODEL,
            num_attention_heads=N_HEADS,
            num_key_value_heads=2,  # grouped-query attention, as in SmolLM2
            intermediate_size=128,
            vocab_size=D_VOCAB,
            **special,
        )
    if family == "gpt2":
        return GPT2Config(n_layer=N_LAYERS, n_embd=D_MODEL, n_head=N_HEADS, vocab_size=D_VOCAB, **special)
    if family == "gptj":
        return GPTJConfig(n_layer=N_LAYERS, n_embd=D_MODEL, n_head=N_HEADS, rotary_dim=8, vocab_size=D_VOCAB, **special)
    if family == "gpt_neox":
        return GPTNeoXConfig(
            num_hidden_layers=N_LAYERS,
            hidden_size=D_MODEL,
            num_attention_heads=N_HEADS,
            intermediate_size=128,
            vocab_size=D_VOCAB,
            **special,
        )
    raise ValueError(family)


@torch.no_grad()
def _rescale(hf: torch.nn.Module) -> None:
    """Weights with unit-scale activations and peaked logits (deterministic under the seed)."""
    from transformers.pytorch_utils import Conv1D

    for module in hf.modules():
        if isinstance(module, torch.nn.Embedding):
            module.weight.normal_(0.0, 1.0)
        elif isinstance(module, (torch.nn.Linear, Conv1D)):
            w = module.weight  # Linear: [out, in]; GPT-2's Conv1D: [in, out]
            fan_in = w.shape[0] if isinstance(module, Conv1D) else w.shape[1]
            gain = 3.0 if w.shape[0] == D_VOCAB else 1.0  # the unembedding: sharper logits
            w.normal_(0.0, gain / math.sqrt(fan_in))
            if module.bias is not None:
                module.bias.normal_(0.0, 0.1)
        elif getattr(module, "weight", None) is not None and module.weight.dim() == 1:  # norms
            module.weight.copy_(1.0 + 0.1 * torch.randn_like(module.weight))
            if getattr(module, "bias", None) is not None:
                module.bias.normal_(0.0, 0.1)


def build_tiny(family: str, tokenizer, seed: int = 0):
    from transformers import AutoModelForCausalLM

    from core.models import wrap_model

    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_config(tiny_config(family), dtype=torch.float32)
    _rescale(hf)
    hf.eval()
    return wrap_model(hf, tokenizer, model_id=f"tiny-{family}")


class CancelAt:
    """A progress callback that records each report and raises core.errors.Cancelled at the
    ``n``-th, as the app's Cancel button does."""

    def __init__(self, n: int):
        self.n, self.reports = n, []

    def __call__(self, fraction: float, message: str) -> None:
        from core.errors import Cancelled

        self.reports.append(message)
        if len(self.reports) == self.n:
            raise Cancelled("stop")


# ---- the disk tier of results (core.result_files) --------------------
# No test reads or writes the real results folder: servers and CLI subprocesses started by any
# fixture inherit a session folder (set at import, before every fixture), and each test gets
# its own empty one, so a test counting computations is never served by an earlier test's file.
os.environ["FV_STUDIO_RESULTS"] = tempfile.mkdtemp(prefix="fv-studio-results-")


@pytest.fixture(autouse=True)
def result_files_folder(tmp_path_factory, monkeypatch):
    """This test's own empty results folder (``FV_STUDIO_RESULTS``; not inside ``tmp_path``,
    which some tests list)."""
    folder = tmp_path_factory.mktemp("results")
    monkeypatch.setenv("FV_STUDIO_RESULTS", str(folder))
    return folder


@pytest.fixture
def single_thread():
    """Tiny tensors: one torch thread is faster, and immune to a busy machine (the old
    setting is restored, so tests on the real model keep theirs)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from core.models import ensure_default_model

    folder: Path = ensure_default_model()  # dequantizes once (~40 s), then cached
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="session", params=FAMILIES)
def tiny_lm(request, tokenizer):
    """A tiny random model of each family, wrapped for nnsight (shared: never modify it)."""
    return build_tiny(request.param, tokenizer)


@pytest.fixture(scope="session")
def tiny_llama(tokenizer):
    return build_tiny("llama", tokenizer)


# Tiny Llama and GPT-2 shared by the steering and turn-taking tests (seed 1, one per module).
def save_tiny(family: str, tokenizer, folder):
    """A tiny random model of ``family`` saved as a model folder (for the CLI and scripts)."""
    lm = build_tiny(family, tokenizer)
    lm.hf.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_folder(tokenizer, tmp_path_factory):
    """The seed-0 tiny Llama as a folder, shared by the CLI tests."""
    return save_tiny("llama", tokenizer, tmp_path_factory.mktemp("tiny_llama_folder"))


@pytest.fixture(scope="module")
def llama(tokenizer):
    return build_tiny("llama", tokenizer, seed=1)


@pytest.fixture(scope="module")
def gpt2(tokenizer):
    return build_tiny("gpt2", tokenizer, seed=1)


def random_direction(lm, n_pos: int | None = None, seed: int = 0) -> torch.Tensor:
    """A random direction about as large as the tiny models' residual stream (norm ~ 8):
    ``[d_model]``, or ``[n_pos, d_model]``."""
    g = torch.Generator().manual_seed(seed)
    shape = (lm.arch.d_model,) if n_pos is None else (n_pos, lm.arch.d_model)
    return torch.randn(shape, generator=g)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright, one per test module (the browser tests)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    import browser_helpers as H

    with sync_api.sync_playwright() as p:
        b = H.launch(p)
        yield b
        b.close()
