"""The Task report as one self-contained HTML file: works offline, loads nothing.

Plotly's JavaScript library is read from the installed plotly package's own files and
inlined in a ``<script>`` element; the figures are the report's plain plotly.js specs
(:mod:`core.figure_specs`) embedded as JSON and drawn with ``Plotly.newPlot``. The package is
located with ``importlib.util.find_spec``, which does not execute it, so core never imports
plotly (tests/test_import_isolation.py). The JSON export is embedded as well, in a
``<script type="application/json">`` element that a reader can extract.
"""

from __future__ import annotations

import html
import importlib.util
import json
from pathlib import Path

from core.errors import UserInputError
from core.report import TaskReport


def plotly_js() -> str:
    """The plotly.min.js bundled with the installed plotly package."""
    spec = importlib.util.find_spec("plotly")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise UserInputError("The HTML report needs the plotly package's JavaScript; install plotly (requirements.txt).")


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element (no "</" can close it early)."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def _text(value: object) -> str:
    return html.escape(str(value))


def render(report: TaskReport) -> str:
    """The whole page: verdict, numbers, figures, decoded tokens, the generation pair."""
    r, g = report.fv, report.generation
    data = report.to_json()
    figures = report.figures()
    rows = [
        ("In-context (held-out queries)", r.icl_accuracy),
        ("Zero-shot", r.zero_shot_baseline),
        (f"Zero-shot + FV (layer {r.layer})", r.zero_shot_with_fv),
        ("Shuffled labels", r.shuffled_baseline),
        ("Shuffled + FV", r.shuffled_with_fv),
        (f"Zero-shot + h-vector (layer {r.hvector_best_layer})", r.hvector_best_accuracy),
    ]
    for label, name in (
        ("Zero-shot, whole generated answers", "zero_shot_generation_accuracy"),
        ("Zero-shot + FV, whole generated answers", "zero_shot_with_fv_generation_accuracy"),
    ):
        if name in data:
            rows.append((label, data[name]))
    table = "\n".join(
        f"<tr><td>{_text(label)}</td><td>{value:.0%}</td><td>{lo:.0%}-{hi:.0%}</td></tr>"
        for label, value in rows
        for lo, hi in [report.accuracy(value).interval]
    )
    verdict = "\n".join(f"<li>{_text(s)}</li>" for s in report.verdict())
    heads = ", ".join(f"{l}.{h}" for l, h in report.top_heads)
    divs = "\n".join(f'<div class="fig" id="fig-{name}"></div>' for name in figures)
    settings = report.settings
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Task report: {_text(report.task)} - {_text(report.model_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; }}
pre {{ background: #f5f5f5; padding: 8px; white-space: pre-wrap; }}
.pair {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }}
.fig {{ margin: 1em 0; }}
</style>
<script>{plotly_js()}</script>
</head>
<body>
<h1>Task report: {_text(report.task)}</h1>
<p>Model {_text(report.model_id)} ({report.n_layers} layers x {report.n_heads} heads).
{report.n_pairs} pairs; {settings.n_shots} shots per prompt, {settings.n_prompts} build prompts,
seed {settings.seed}; {r.n_eval} held-out test queries. Computed in {report.seconds:.1f} s.</p>
<h2>Verdict</h2>
<ul>
{verdict}
</ul>
<h2>Numbers</h2>
<table>
<tr><th>accuracy</th><th>top-1</th><th>95% CI</th></tr>
{table}
</table>
<p>Function vector heads (largest effect first): {_text(heads)}. Layer: {_text(r.layer_choice)}.</p>
<h2>Figures</h2>
{divs}
<h2>Free generation</h2>
<p>Prompt:</p>
<pre>{_text(g.prompt)}</pre>
<div class="pair">
<div><h3>Unsteered</h3><pre>{_text(g.unsteered)}</pre></div>
<div><h3>Steered (layer {g.layer}, coefficient {g.coeff:g})</h3><pre>{_text(g.steered)}</pre></div>
</div>
<script type="application/json" id="report-data">{_script_json(data)}</script>
<script type="application/json" id="report-figures">{_script_json(figures)}</script>
<script>
const figures = JSON.parse(document.getElementById("report-figures").textContent);
for (const [name, spec] of Object.entries(figures)) {{
  Plotly.newPlot("fig-" + name, spec.data, spec.layout, {{responsive: true}});
}}
</script>
</body>
</html>
"""
