"""A small classroom on the real server (bench/load.py's :func:`run`): order and results, not speed.

Eight tabs are opened first (cached Model & prompts and Head attribution pages, and two Model &
prompts tabs that will compute); then one session starts a long generation on Steer, and while
its progress bar is up, four tabs switch to the other cached page in the sidebar and two
change the seed (a new prediction, which queues for the model behind the generation's pieces).
Checked: no errors anywhere (exception boxes, error alerts, Playwright failures, server
tracebacks); every cached view and both short computations were served and drawn while the
generation was still running; no cached view ever waited for the model; the predictions shown
equal the same computation done alone. The generation is made long (8 prompts x 4 samples) so
that it outlasts the others on a slow machine; the test stops once they are done. Timings are
printed, never asserted.
"""

from __future__ import annotations

import sys
from pathlib import Path

import browser_helpers as H
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

if not Path(H.CHROMIUM).exists():
    pytest.skip(f"no Chromium at {H.CHROMIUM}", allow_module_level=True)
pytest.importorskip("playwright.sync_api")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import load  # noqa: E402

CFG = load.LoadConfig(
    n_tokens=200,
    n_prompts=8,
    n_samples=4,
    n_cached=4,
    n_short=2,
    alone=False,
    preopen=True,
    wait_for_generation=False,
    timeout_s=540.0,
    server_env=(("OMP_WAIT_POLICY", "PASSIVE"),),
)


def test_classroom_order_and_results(tmp_path):
    result = load.run(CFG, workdir=tmp_path, log=print)
    summary, sessions = result["summary"], result["sessions"]
    print({k: summary[k] for k in ("cached_switch_s", "short_total_s", "short_waited_s", "health_latency_load")})

    texts = [t for s in [result["generation"], *sessions] for t in s["error_texts"]]
    assert summary["errors"] == 0, (texts, result["server_tracebacks"])
    assert result["generation"]["progress_visible_at_start"]
    cached = [s for s in sessions if s["role"] == "cached"]
    short = [s for s in sessions if s["role"] == "short"]
    assert len(cached) == CFG.n_cached and len(short) == CFG.n_short
    assert all(s["switch_complete_s"] is not None for s in cached), "a cached view was never drawn"
    assert all(s["total_s"] is not None for s in short), "a short computation never finished"
    assert result["generation"]["still_generating_at_end"], "the generation ended before the others: make it longer"
    assert summary["all_server_done_while_generating"] and summary["all_done_while_generating"]
    assert summary["cached_waited_for_model_s"] == 0, [
        (s["session"], s["view_waited_s"], s["switch_waited_s"]) for s in cached
    ]
    assert all(s["waits"] >= 1 for s in short), "a new prediction should queue behind the generation"

    # the same predictions, computed alone in this process
    from core.models import ModelSpec, load_model
    from core.predict import predict
    from core.prompts import DEFAULT_TEMPLATE, PromptSettings
    from core.tasks import load_builtin
    from dashboard.state import DEFAULTS

    lm = load_model(ModelSpec())
    task = load_builtin(DEFAULTS["task_name"])
    for s in short:
        settings = PromptSettings(
            n_shots=DEFAULTS["n_shots"], n_prompts=DEFAULTS["n_prompts"], seed=s["seed"], template=DEFAULT_TEMPLATE
        )
        expected = predict(lm, task, settings).table()
        header, rows = s["shown"]["header"], s["shown"]["rows"]
        assert rows, f"seed {s['seed']}: an empty prediction table"
        for row in rows:
            i = int(row[0])
            assert row[header.index("query")] == expected[i]["query"], (s["seed"], row, expected[i])
            assert row[header.index("prediction")] == expected[i]["prediction"].strip(), (s["seed"], row, expected[i])
        accuracy = sum(r["correct"] for r in expected) / len(expected)
        assert s["shown"]["metrics"]["In-context accuracy"] == f"{accuracy:.0%}", s["shown"]["metrics"]
