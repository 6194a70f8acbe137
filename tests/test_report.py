"""The Task report on a tiny random model: stages, JSON, verdict sentences, self-contained HTML, CLI checks."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from core import cli
from core.prompts import PromptSettings
from core.report import STAGES, ReportOptions, build_report
from core.report_html import render
from core.tasks import load_builtin

REQUIRED = (
    "icl_accuracy",
    "zero_shot_accuracy",
    "top_heads",
    "cie",
    "layer",
    "zero_shot_with_fv",
    "shuffled_baseline",
    "shuffled_with_fv",
    "hvector_best_layer",
    "hvector_best_accuracy",
    "generation",
    "seconds",
)


@pytest.fixture(scope="module")
def report_and_messages(tiny_llama):
    messages: list[tuple[float, str]] = []
    rep = build_report(
        tiny_llama,
        load_builtin("present_past"),
        PromptSettings(n_shots=2, n_prompts=4),
        ReportOptions(top_k=3, n_eval=6, max_new_tokens=4),
        progress=lambda f, m: messages.append((f, m)),
    )
    return rep, messages


def test_one_bar_names_every_stage_in_order(report_and_messages):
    rep, messages = report_and_messages
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    firsts = [next(i for i, (_, m) in enumerate(messages) if m.startswith(name)) for _, name, _ in STAGES]
    assert firsts == sorted(firsts)
    assert set(rep.stage_seconds) == {k for k, _, _ in STAGES}


def test_json_has_the_numbers_of_the_stages(report_and_messages, tiny_llama):
    rep, _ = report_and_messages
    data = json.loads(json.dumps(rep.to_json()))  # plain JSON
    assert all(k in data for k in REQUIRED)
    assert set(data["generation"]) >= {"prompt", "unsteered", "steered"}
    n = tiny_llama.arch
    assert len(data["cie"]) == n.n_layers and len(data["cie"][0]) == n.n_heads
    assert data["zero_shot_with_fv"] == data["function_vector"]["zero_shot_by_layer"][data["layer"]]
    assert data["icl_accuracy_ci"]["n"] == data["n_eval"] == rep.fv.n_eval
    # top heads are the largest effects, largest first
    flat = sorted((v for row in data["cie"] for v in row), reverse=True)
    assert [e for _, _, e in data["top_heads"]] == flat[:3]
    assert data["n_shots"] == 2
    # the generation prompt is made from a held-out query, zero-shot
    assert data["generation"]["prompt"] == f"Q: {data['generation']['query']}\nA:"


def _with(rep, **numbers):
    return dataclasses.replace(rep, fv=dataclasses.replace(rep.fv, **numbers))


def test_verdict_positive_and_negative(report_and_messages):
    rep, _ = report_and_messages
    n = rep.fv.n_eval
    good = _with(rep, icl_accuracy=1.0, zero_shot_baseline=0.0, zero_shot_with_fv=5 / n)
    text = " ".join(good.verdict())
    assert f"in context (100% on {n} queries" in text
    assert f"A function vector of 3 heads restores {5 / n:.0%} zero-shot at layer {rep.fv.layer} of 3" in text
    bad = _with(rep, icl_accuracy=1 / n, zero_shot_baseline=0.0, zero_shot_with_fv=0.0)
    text = " ".join(bad.verdict())
    assert f"In-context accuracy is {1 / n:.0%}" in text and "little task to extract" in text
    assert "does not clearly lift" in text and "restores" not in text


def test_verdict_names_the_heads_that_carry_the_effect(report_and_messages):
    rep, _ = report_and_messages
    (l0, h0), (l1, h1), (l2, h2) = rep.top_heads
    cie = [list(row) for row in rep.cie]
    cie[l0][h0], cie[l1][h1], cie[l2][h2] = 0.8, 0.1, 0.1
    one = dataclasses.replace(rep, cie=tuple(tuple(r) for r in cie))
    assert f"Head {l0}.{h0} carries most of the effect (80% of the top 3" in " ".join(one.verdict())
    cie[l0][h0], cie[l1][h1], cie[l2][h2] = 0.4, 0.4, 0.2
    two = dataclasses.replace(rep, cie=tuple(tuple(r) for r in cie))
    assert f"Heads {l0}.{h0} and {l1}.{h1} carry most of the effect (80%" in " ".join(two.verdict())


def test_html_is_self_contained_and_holds_the_figures(report_and_messages):
    rep, _ = report_and_messages
    page = render(rep)
    assert not re.search(r"<script[^>]*\ssrc=", page)  # nothing loaded from anywhere
    assert "<link" not in page and "cdn" not in page.lower().split("<script>")[0]
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js inlined
    figures = json.loads(
        re.search(r'<script type="application/json" id="report-figures">(.*?)</script>', page, re.S)[1]
    )
    assert figures["heatmap"]["data"][0]["z"] == [list(row) for row in rep.cie]
    assert figures["layers"]["data"][0]["y"] == list(rep.fv.zero_shot_by_layer)
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)[1])
    assert data["verdict"] == rep.verdict()
    assert rep.verdict()[0].replace("'", "&#x27;") in page


def test_cli_bad_input_is_one_line_before_any_model(tmp_path, capsys):
    assert cli.main(["report", "--task", "no_such_task"]) == 2
    assert cli.main(["report", "--task", "antonym", "--out", str(tmp_path / "missing" / "r.html")]) == 2
    assert (
        cli.main(["report", "--task", "antonym", "--out", str(tmp_path / "r.x"), "--json", str(tmp_path / "r.x")]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "--out" in err[1] and "does not exist" in err[1]
