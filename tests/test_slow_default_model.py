"""Checks on the real default model (SmolLM2-135M-Instruct): slow-marked, run by `make test`."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from core import fv
from core.inference import encode, run_forward
from core.models import load_model
from core.predict import predict
from core.prompts import PromptSettings
from core.tasks import load_builtin

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lm():
    return load_model()


@pytest.mark.parametrize("task, floor", [("singular_plural", 0.9), ("present_past", 0.8)])
def test_icl_accuracy(lm, task, floor):
    result = predict(lm, load_builtin(task), PromptSettings(n_shots=10, n_prompts=20))
    assert len(result.prompts) == 20
    assert result.icl_accuracy >= floor, result.table()
    # zero-shot is far below in-context on these tasks: the examples are what teaches the task
    assert result.zero_shot_accuracy < result.icl_accuracy


def test_cached_copy_matches_gguf_load(lm):
    """The safetensors copy reloads to exactly the logits of the dequantized GGUF model."""
    from transformers import AutoModelForCausalLM

    from core.models import _GGUF_FILE, _gguf_folder

    gguf = AutoModelForCausalLM.from_pretrained(_gguf_folder(), gguf_file=_GGUF_FILE, dtype=torch.float32).eval()
    enc = encode(lm, ["Q: hot\nA: cold\n\nQ: big\nA:", "The capital of France is"])
    inputs = enc.as_inputs()
    with torch.no_grad():
        first = gguf(**inputs).logits[:, -1]
        reloaded = lm.hf(**inputs).logits[:, -1]
    for (name, a), b in zip(gguf.state_dict().items(), lm.hf.state_dict().values()):
        assert torch.equal(a, b), name  # the copy holds exactly the dequantized weights
    assert torch.allclose(first, reloaded, atol=1e-5, rtol=0)
    assert torch.equal(first.argmax(-1), reloaded.argmax(-1))


@pytest.mark.parametrize("task", ["singular_plural", "present_past"])
def test_function_vector_lifts_zero_shot(lm, task):
    wb = fv.build_workbench(lm, load_builtin(task), PromptSettings(n_shots=10, n_prompts=20))
    at = fv.run_attribution(lm, wb)
    report = fv.evaluate(lm, wb, at.top_heads(10), layer="auto", n_eval=50)
    assert report.n_eval >= 30
    assert not report.overlap  # evaluation queries are disjoint from the build queries
    assert report.zero_shot_with_fv - report.zero_shot_baseline >= 0.3, report.to_json()


def test_two_threads_trace_at_once(lm):
    """nnsight is not thread-safe; the model lock makes concurrent sessions both correct."""
    prompts = {
        "a": ["Q: cat\nA: cats\n\nQ: dog\nA: dogs\n\nQ: box\nA:"],
        "b": ["Q: walk\nA: walked\n\nQ: jump\nA: jumped\n\nQ: play\nA:"],
    }
    expected = {k: run_forward(lm, encode(lm, p)).logits for k, p in prompts.items()}
    results: dict[str, list] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def work(key: str) -> None:
        try:
            for _ in range(5):
                results[key].append(run_forward(lm, encode(lm, prompts[key]), save_resid=True).logits)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for key in prompts:
        assert len(results[key]) == 5
        for logits in results[key]:
            assert torch.allclose(logits, expected[key], atol=1e-5)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_cli_info_and_predict(tmp_path):
    info = json.loads(_cli("info").stdout)
    assert info["n_layers"] == 30 and info["n_heads"] == 9 and info["n_kv_heads"] == 3 and info["d_head"] == 64
    out = tmp_path / "p.json"
    proc = _cli("predict", "--task", "singular-plural", "--n-prompts", "10", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert len(data["prompts"]) == len(data["targets"]) == len(data["predictions"]) == 10
    assert data["icl_accuracy"] >= 0.8


def test_cli_bad_input_exits_2(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("hot -> cold\nbig\n")
    proc = _cli("predict", "--task-file", str(bad))
    assert proc.returncode == 2 and "Line 2" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("predict", "--task", "no-such-task")
    assert proc.returncode == 2 and "Unknown task" in proc.stderr
    proc = _cli("info", "--model", "no-such-org/no-such-model")
    assert proc.returncode == 2 and "no-such-org/no-such-model" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_attribution_json(tmp_path):
    out = tmp_path / "a.json"
    proc = _cli("attribution", "--task", "present-past", "--n-prompts", "6", "--n-shots", "5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    for key in (
        "model",
        "mean_prompts",
        "clean_prompts",
        "corrupted_prompts",
        "targets",
        "metric",
        "cie",
        "top_heads",
        "seconds",
    ):
        assert key in data
    assert len(data["cie"]) == 30 and len(data["cie"][0]) == 9
    assert data["clean_prompts"] != data["corrupted_prompts"]
    assert all(t.startswith(" ") for t in data["targets"])
