"""The Task report on the default model: present_past (the function vector lifts zero-shot
accuracy and the verdict says so), and the page in AppTest."""

from __future__ import annotations

import pytest
from app_helpers import button as _button
from app_helpers import errors as _errors
from app_helpers import start as _app

from core.models import load_model
from core.prompts import PromptSettings
from core.report import ReportOptions, build_report
from core.tasks import load_builtin

pytestmark = pytest.mark.slow


def test_present_past_report_lifts_zero_shot_and_says_so():
    lm = load_model()
    rep = build_report(lm, load_builtin("present_past"), PromptSettings(n_shots=10, n_prompts=20), ReportOptions())
    r = rep.fv
    assert r.zero_shot_with_fv - r.zero_shot_baseline >= 0.3
    verdict = rep.verdict()
    assert verdict[0].startswith("The model does this task in context")
    lifted = [s for s in verdict if s.startswith("A function vector of 10 heads restores")]
    assert lifted and f"{r.zero_shot_with_fv:.0%} zero-shot at layer {r.layer} of 30" in lifted[0]
    assert rep.to_json()["zero_shot_with_fv"] == r.zero_shot_with_fv


def test_task_report_page(tmp_path, monkeypatch):
    at = _app(tmp_path, monkeypatch, n_prompts=6)
    at.switch_page("../pages/task_report.py")
    at.run()
    assert not at.exception and not _errors(at)
    assert any("Shots used: 10" in c.value for c in at.caption)
    assert not any(m.label == "Zero-shot" for m in at.metric)  # nothing runs before the click
    _button(at, "Run the report").click().run()
    assert not at.exception and not _errors(at)
    labels = [m.label for m in at.metric]
    assert "In-context" in labels and any(l.startswith("Zero-shot + FV (layer") for l in labels)
    assert sum(c.value.startswith("of ") and "95% CI" in c.value for c in at.caption) == 6  # n and interval
    assert any(
        "The model does this task in context" in md.value or "In-context accuracy is" in md.value for md in at.markdown
    )
