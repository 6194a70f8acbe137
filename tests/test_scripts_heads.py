"""The scripts of the heads comparison, the task comparison and the Task report
(core.scripts.heads, .compare, .report) reproduce the app's numbers, and ``--script`` writes
them on the CLI.

As in test_scripts.py: each script runs in a fresh Python process (one process for all of
them), on tiny random models saved as folders, and its printed JSON must equal the app's
result within 1e-4, every key of the script's being one of the app's. The heads script runs
on every family (the attention module's path differs); its non-default induction settings
(2 sequences of 8 tokens, seed 1) must travel into the script. Llama runs the three commands
through the CLI with ``--script`` (the comparison with an automatic layer per task, the report
with its JSON in a ``--json`` file). The tasks
are made of the tiny model's own zero-shot answers, so accuracies are not all 0.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from conftest import FAMILIES, save_tiny
from script_helpers import as_json, assert_matches, run_scripts
from test_scripts import own_answers_task

from core import fv, induction
from core.cli import main
from core.models import ModelSpec, load_model
from core.prompts import PromptSettings
from core.scripts.heads import heads_script
from core.tasks import Task

SETTINGS = PromptSettings(n_shots=3, n_prompts=6, seed=0)
N_EVAL, N_MAX = 6, 3
INDUCTION = {"n_seqs": 2, "seq_len": 8, "seed": 1}
PROMPT_ARGS = ["--n-shots", "3", "--n-prompts", "6"]


def heads_case(family: str, tokenizer, folder) -> tuple[str, str, dict]:
    """(name, the heads script, the app's JSON as ``python -m core heads`` builds it)."""
    save_tiny(family, tokenizer, folder)
    lm = load_model(ModelSpec(model_id=str(folder)))
    task = own_answers_task(lm)
    wb = fv.build_workbench(lm, task, SETTINGS)
    at = fv.run_attribution(lm, wb, metric="logprob")
    scores = induction.induction_scores(lm, **INDUCTION)
    prompts = induction.ablation_prompts(task, SETTINGS, N_EVAL)
    cmp = induction.compare_heads(lm, prompts, wb.stats.mean_heads, at, scores, n_max=N_MAX)
    source = heads_script(lm.spec, task, SETTINGS, "logprob", N_EVAL, N_MAX, **_renamed(INDUCTION))
    return (
        f"{family}-heads",
        source,
        {"model": lm.model_id, "task": task.name, "settings": SETTINGS.to_dict(), **cmp.to_json()},
    )


def _renamed(settings: dict) -> dict:
    return {"n_seqs": settings["n_seqs"], "seq_len": settings["seq_len"], "induction_seed": settings["seed"]}


def cli_cases(folder, root) -> list[tuple[str, str, dict]]:
    """``python -m core heads|compare ... --script FILE`` on the tiny Llama: (name, the script
    it wrote, the command's own JSON)."""
    task = own_answers_task(load_model(ModelSpec(model_id=str(folder))))
    half = len(task.pairs) // 2
    files = []
    for name, pairs in (("own_a", task.pairs[:half]), ("own_b", task.pairs[half:])):
        path = root / f"{name}.json"
        path.write_text(json.dumps(Task(name=name, pairs=pairs).to_json()), encoding="utf-8")
        files.append(str(path))
    model = ["--model", str(folder)]
    commands = {
        "heads": ["--task-file", files[0], *PROMPT_ARGS, "--n-max", str(N_MAX), "--n-eval", str(N_EVAL)],
        "compare": ["--task-files", ",".join(files), *PROMPT_ARGS, "--top-k", "3", "--n-eval", str(N_EVAL)],
    }
    cases = []
    for command, extra in commands.items():
        script, out = root / f"cli_{command}.py", root / f"cli_{command}.json"
        assert main([command, *model, *extra, "--script", str(script), "--out", str(out)]) == 0
        result = json.loads(out.read_text(encoding="utf-8"))
        assert result["script"] == str(script)
        cases.append((f"cli-{command}", script.read_text(encoding="utf-8"), result))
    # the report: its JSON goes to --json, stdout says where the script went
    script, data = root / "cli_report.py", root / "cli_report.json"
    report = ["--task-file", files[0], *PROMPT_ARGS, "--heads", "3", "--n-eval", str(N_EVAL), "--max-new-tokens", "6"]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["report", *model, *report, "--json", str(data), "--script", str(script)]) == 0
    assert json.loads(stdout.getvalue())["script"] == str(script)
    cases.append(("cli-report", script.read_text(encoding="utf-8"), json.loads(data.read_text(encoding="utf-8"))))
    return cases


@pytest.fixture(scope="module")
def results(tokenizer, tmp_path_factory):
    """{case: (the script's printed JSON, the app's)}, every script run in one subprocess."""
    root = tmp_path_factory.mktemp("heads_scripts")
    cases = [heads_case(family, tokenizer, root / family) for family in FAMILIES if family != "llama"]
    llama = save_tiny("llama", tokenizer, root / "llama")
    cases += cli_cases(llama, root)
    paths = []
    for name, source, _ in cases:
        path = root / f"{name}.py"
        path.write_text(source, encoding="utf-8")
        paths.append(str(path))
    return {name: (got, as_json(app)) for (name, _, app), got in zip(cases, run_scripts(paths))}


CASES = [f"{family}-heads" for family in FAMILIES if family != "llama"] + ["cli-heads", "cli-compare", "cli-report"]
NOT_RECOMPUTED = {"seconds", "script", "verdict", "stage_seconds"}  # timings, paths, the report's sentences


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("case", CASES)
def test_script_reproduces_the_app(results, case):
    got, app = results[case]
    missing = set(app) - set(got) - NOT_RECOMPUTED
    assert not missing, f"{case}: the script does not print {sorted(missing)}"
    assert_matches(got, app, case)


def test_the_comparisons_have_something_to_be_wrong_about(results):
    """Not every score is equal (else a wrong ranking or a lost edit would go unnoticed): the
    ablation curves move, the induction scores differ, and transfer accuracies are not all 0."""
    for case in [c for c in CASES if c.endswith("-heads")]:
        app = results[case][1]
        curves = app["ablation"]["fv_heads_mean_logprob"] + app["ablation"]["induction_heads_mean_logprob"]
        assert len(set(curves)) > 1, case
        assert len({s for row in app["induction"] for s in row}) > 1, case
        assert app["induction_settings"] == INDUCTION or case == "cli-heads", case
    compare = results["cli-compare"][1]
    assert compare["layer_choice"] == "auto" and any(a > 0 for row in compare["transfer"] for a in row)


def test_heads_script_settings_reach_the_script():
    """The CLI's induction seed is the prompt seed, and the script carries what it is given."""
    source = heads_script("some-model", own_task_stub(), SETTINGS, "prob", N_EVAL, 2, 3, 5, 7)
    assert "INDUCTION_SETTINGS = {'n_seqs': 3, 'seq_len': 5, 'seed': 7}" in source
    assert "N_MAX = 2" in source and "METRIC = 'prob'" in source


def own_task_stub() -> Task:
    from core.tasks import Pair

    return Task(name="stub", pairs=tuple(Pair(f"w{i}", f"v{i}") for i in range(30)))


def test_pages_show_the_scripts(tmp_path, monkeypatch, tiny_llama_folder):
    """Head attribution's induction view and Compare tasks each show their script's expander
    (AppTest on the tiny Llama; shown_scripts checks it compiles and imports nothing of ours)."""
    from app_helpers import button, errors, shown_scripts, start

    seed = {"model_id": str(tiny_llama_folder), "n_prompts": 4, "n_shots": 2, "show_induction": True}
    at = start(tmp_path, monkeypatch, **seed, compare_tasks=["antonym", "capitalize"], compare_layer=1)
    at.switch_page("../pages/head_attribution.py")
    at.run()
    assert not at.exception and not errors(at)
    shown_scripts(at, ["mean head activations", "the indirect-effect grid", "the induction comparison"])
    at.switch_page("../pages/compare_tasks.py")
    at.run()
    button(at, "Run").click().run()
    assert not at.exception and not errors(at)
    shown_scripts(at, ["this comparison"])
