"""The exported nnsight scripts (core.scripts) reproduce the app's numbers.

Each script runs in a fresh Python process, as a user would run it, on a tiny random model of
every family saved as a folder; its printed JSON must equal what the app computed within 1e-4.
One subprocess runs every script in turn (``runpy``), so the suite pays for importing torch
and nnsight once. The task is made of the tiny model's own zero-shot answers, so accuracies
are far from 0 and a script that adds a vector at the wrong place changes them.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from conftest import FAMILIES, save_tiny
from script_helpers import IGNORED, as_json, assert_matches, run_scripts

from core import fv, layer_choice
from core.inference import encode, first_token_ids, run_forward, top_tokens
from core.models import ModelSpec, load_model
from core.predict import predict, tokens
from core.prompts import DEFAULT_TEMPLATE, PromptSettings, render_query
from core.scripts.attribution import attribution_script, mean_activations_script
from core.scripts.function_vector import fv_report_script
from core.scripts.predict import next_token_script, predict_script
from core.scripts.task_vectors import hvector_script
from core.stats import Accuracy
from core.tasks import Pair, Task, load_builtin

SETTINGS = PromptSettings(n_shots=3, n_prompts=6, seed=0)
N_EVAL = 10


def own_answers_task(lm, n_max: int = 30) -> Task:
    """A task whose answers are the model's own zero-shot next tokens (whole words with a
    leading space that re-tokenize to themselves)."""
    words = list(dict.fromkeys(p.input for p in load_builtin("antonym").pairs))[:150]
    logits = run_forward(lm, encode(lm, [render_query(DEFAULT_TEMPLATE, w) for w in words])).logits
    pairs = []
    for word, token in zip(words, logits.argmax(-1).tolist()):
        text = lm.tokenizer.decode([token])
        if text.startswith(" ") and text.strip().isalpha() and int(first_token_ids(lm, [text])[0]) == token:
            pairs.append(Pair(word, text.strip()))
    assert len(pairs) >= SETTINGS.n_shots + 2, f"only {len(pairs)} usable answers"
    return Task(name=f"own_{lm.arch.family}", pairs=tuple(pairs[:n_max]))


@contextlib.contextmanager
def layer_rule_recorded():
    """Records what the app's layer choice measures (``scores_sweep`` as :mod:`core.layer_choice`
    calls it) and yields a list that receives, per choice, the ``layer_rule`` a script prints:
    the log-probability per layer, the Wilson bound of the best layer and the layers tied with it."""
    rules, measure = [], layer_choice.scores_sweep

    def record(lm, prompts, *args):
        acc, logprob = measure(lm, prompts, *args)
        correct = [round(a * len(prompts)) for a in acc[1:]]  # [0] is the unedited run
        low = Accuracy(max(correct), len(prompts)).interval[0]
        tied = [l for l, c in enumerate(correct) if c == max(correct) or c / len(prompts) >= low]
        rules.append({"valid_logprob_by_layer": logprob[1:], "tied_low": low, "tied_layers": tied})
        return acc, logprob

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(layer_choice, "scores_sweep", record)
        yield rules


def fv_case(name: str, lm, wb, heads, layer, coeff: float, n_eval: int = N_EVAL) -> tuple[str, str, dict]:
    """(name, the fv script, the app's report) for heads at ``layer`` (an int or ``"auto"``),
    built as the pages build it (the heads curve's own heads from the report)."""
    with layer_rule_recorded() as rules:
        report = fv.evaluate(lm, wb, heads, layer=layer, n_eval=n_eval, coeff=coeff)
    expected = {"model": lm.model_id, "task": wb.task.name, **report.to_json()}
    if layer == "auto":
        (expected["layer_rule"],) = rules
    return name, fv_report_script(lm.spec, wb.task, wb.settings, report, n_eval), expected


def family_cases(family: str, tokenizer, folder) -> list[tuple[str, str, dict]]:
    """(name, script source, the app's result) for one family: every kind on Llama, the
    function vector and the attribution grid (which touch every layout path) on the others."""
    save_tiny(family, tokenizer, folder)
    lm = load_model(ModelSpec(model_id=str(folder)))
    spec, task = lm.spec, own_answers_task(lm)
    wb = fv.build_workbench(lm, task, SETTINGS)
    metric = "prob" if family in ("llama", "gptj") else "logprob"
    at = fv.run_attribution(lm, wb, metric=metric)
    layers = [1] if family == "gptj" else None  # the script may patch a few layers only
    heads, coeff = at.top_heads(3), 3.0
    # gpt2 chooses its layer; gpt_neox's heads are picked by hand, out of rank order (the heads
    # curve still adds the attribution's top heads, core.fv.evaluate)
    fv_layer = "auto" if family == "gpt2" else 1
    fv_heads = [heads[2], heads[0]] if family == "gpt_neox" else heads
    cases = [
        (
            f"{family}-attribution",
            attribution_script(spec, task, SETTINGS, metric, layers),
            {
                "model": lm.model_id,
                "task": task.name,
                "settings": SETTINGS.to_dict(),
                "mean_prompts": list(wb.prompts.clean),
                "clean_prompts": list(wb.prompts.clean),
                "corrupted_prompts": list(wb.prompts.corrupted),
                "targets": list(wb.prompts.targets),
                "metric": metric,
                "icl_accuracy": wb.stats.icl_accuracy,
                "icl_accuracy_ci": Accuracy.of(wb.stats.icl_accuracy, wb.stats.n_prompts).to_json(),
                "cie": at.cie.tolist(),
                # restricted to some layers, the ranking is over those layers' heads
                "top_heads": [list(h) for h in at.top_heads(at.cie.numel()) if layers is None or h[0] in layers][:20],
            },
        ),
        fv_case(f"{family}-fv", lm, wb, fv_heads, fv_layer, coeff),
    ]
    if family == "llama":
        prompt = "The Eiffel Tower is in the city of"
        logits = run_forward(lm, encode(lm, [prompt])).logits
        cases.append(
            (
                "llama-next-token",
                next_token_script(spec, prompt, 10),
                {
                    "model": lm.model_id,
                    "prompt": prompt,
                    "tokens": [text for _, text in tokens(lm, prompt)],
                    "top": [list(t) for t in top_tokens(lm, logits, 10)[0]],
                },
            )
        )
        pred = predict(lm, task, SETTINGS)
        sweep = fv.hvector_sweep(lm, wb, n_eval=N_EVAL)
        cases += [
            (
                "llama-predict",
                predict_script(spec, task.name, pred.prompts.clean, pred.prompts.zero_shot, pred.prompts.targets),
                {"model": lm.model_id, "task": task.name, **pred.to_json()},
            ),
            (
                "llama-mean-activations",
                mean_activations_script(spec, task, SETTINGS),
                {
                    "model": lm.model_id,
                    "task": task.name,
                    "settings": SETTINGS.to_dict(),
                    "mean_prompts": list(wb.prompts.clean),
                    "targets": list(wb.prompts.targets),
                    "icl_accuracy": wb.stats.icl_accuracy,
                    "icl_accuracy_ci": Accuracy.of(wb.stats.icl_accuracy, wb.stats.n_prompts).to_json(),
                    "mean_heads": wb.stats.mean_heads.tolist(),
                    "hvector": wb.stats.hvector.tolist(),
                },
            ),
            (
                "llama-hvector",
                hvector_script(spec, task, SETTINGS, N_EVAL, layer=1),
                {
                    "model": lm.model_id,
                    "task": task.name,
                    "settings": SETTINGS.to_dict(),
                    "zero_shot_baseline": sweep.zero_shot_baseline,
                    "by_layer": list(sweep.by_layer),
                    "icl_accuracy": sweep.icl_accuracy,
                    "n_eval": sweep.n_eval,
                    "overlap": sweep.overlap,
                    "best_layer": sweep.best_layer,
                    "layer": 1,
                    "hvector": wb.stats.hvector[1].tolist(),
                },
            ),
        ]
    return cases


def cli_cases(folder, root) -> list[tuple[str, str, dict]]:
    """``python -m core predict|attribution|fv --script FILE`` on the tiny Llama: (name, the
    script it wrote, its own JSON). The fv script must carry the heads top-k chose, and choose
    its layer again (``--layer auto``): its ``layer_rule`` is compared with the app's."""
    from core.cli import main

    task = own_answers_task(load_model(ModelSpec(model_id=str(folder))))

    task_file = root / f"{task.name}.json"
    task_file.write_text(json.dumps(task.to_json()), encoding="utf-8")
    common = ["--model", str(folder), "--task-file", str(task_file), "--n-shots", "3", "--n-prompts", "6"]
    commands = {
        "predict": [],
        "attribution": ["--script-layers", "0,2"],
        "fv": ["--heads", "3", "--layer", "auto", "--n-eval", str(N_EVAL)],
    }
    cases = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FV_STUDIO_CACHE", str(root / "cache"))  # the CLI's stored results stay here
        for command, extra in commands.items():
            script, out = root / f"cli_{command}.py", root / f"cli_{command}.json"
            with layer_rule_recorded() as rules:
                assert main([command, *common, *extra, "--script", str(script), "--out", str(out)]) == 0
            result = json.loads(out.read_text(encoding="utf-8"))
            assert result["script"] == str(script)
            if command == "fv":
                (result["layer_rule"],) = rules
            cases.append((f"cli-{command}", script.read_text(encoding="utf-8"), result))
    return cases


def run_cases(cases: list[tuple[str, str, dict]], root) -> dict[str, tuple[dict, dict]]:
    """{case name: (the script's printed JSON, the app's result)}, the scripts run in one
    subprocess."""
    paths = []
    for name, source, _ in cases:
        path = root / f"{name}.py"
        path.write_text(source, encoding="utf-8")
        paths.append(str(path))
    printed = run_scripts(paths)
    results = {}
    for (name, _, expected), got in zip(cases, printed):
        expected = as_json(expected)
        if "layers" in got and "cie" in expected:  # a script restricted to some layers ranks their heads
            cells = [(l, h) for l in got["layers"] for h in range(len(expected["cie"][l]))]
            ranked = sorted(cells, key=lambda lh: -expected["cie"][lh[0]][lh[1]])
            expected["top_heads"] = [list(lh) for lh in ranked[:20]]
        results[name] = (got, expected)
    return results


@pytest.fixture(scope="module")
def script_results(tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("scripts")
    cases = [c for family in FAMILIES for c in family_cases(family, tokenizer, root / family)]
    cases += cli_cases(root / "llama", root)
    return run_cases(cases, root)


CASES = [f"{f}-{kind}" for f in FAMILIES for kind in ("attribution", "fv")] + [
    "llama-next-token",
    "llama-predict",
    "llama-mean-activations",
    "llama-hvector",
    "cli-predict",
    "cli-attribution",
    "cli-fv",
]


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("case", CASES)
def test_exported_script_reproduces_the_app(script_results, case):
    got, expected = script_results[case]
    assert_matches(got, expected, case)


def test_the_comparison_sees_real_accuracies(script_results):
    """The task is built so accuracies are not all 0 (else a vector at the wrong layer would
    go unnoticed): some are strictly between 0 and 1, and the vector changes some."""
    for family in FAMILIES:
        _, app = script_results[f"{family}-fv"]
        accs = [app["zero_shot_baseline"], *app["zero_shot_by_layer"], *app["hvector_by_layer"]]
        assert any(0 < a < 1 for a in accs) and len(set(accs)) > 1, (family, accs)


FV_CASES = [f"{f}-fv" for f in FAMILIES] + ["cli-fv"]


@pytest.mark.parametrize("case", FV_CASES)
def test_the_fv_script_prints_every_number_of_the_app(script_results, case):
    """The comparison above checks what a script printed; here, that it printed every key of the
    app's report (the heads curve, the layer choice and its rule, the generated answers and
    their accuracies, each interval), and every column of the examples table."""
    assert_prints_every_number(*script_results[case], case)


def assert_prints_every_number(got: dict, expected: dict, case: str) -> None:
    cli_only = {"script"}  # where the CLI wrote the script
    assert not set(expected) - set(got) - IGNORED - cli_only, f"{case}: not printed"
    assert all(set(g) == set(e) for g, e in zip(got["examples"], expected["examples"])), case
    assert ("layer_rule" in got) == got["layer_choice"].startswith("auto"), case


def test_the_scripts_answer_match_is_the_apps():
    """The whole-answer match a script inlines (traces.ANSWER_MATCH) is core.generation_scoring's,
    on answers cut at a stop, stripped of punctuation, in and out of case-sensitive tasks."""
    import unicodedata

    from core.generation_scoring import answer_stops, is_match
    from core.scripts.traces import ANSWER_MATCH

    stops = answer_stops("Q: {x}\nA: {y}.", " | ")
    pairs = [(" Paris.\nQ:", "Paris"), (" «paris»", "Paris"), (" Paris | x", "Paris"), (" Pa ris", "Paris")]
    pairs += [(" apple", "Apple"), (" Apple", "Apple"), ("", "b"), (" b!", "b"), (" Paris is", "Paris")]
    for case in (False, True):
        script = {"unicodedata": unicodedata, "STOPS": list(stops), "CASE_SENSITIVE": case}
        exec(ANSWER_MATCH, script)
        for generated, answer in pairs:
            assert script["is_match"](generated, answer) == is_match(generated, answer, case, stops), (generated, case)


def test_script_flag_is_checked_before_the_model_loads(tmp_path, capsys):
    """A folder that does not exist, or bad --script-layers: one line, exit 2, and no model
    load (the model named here does not exist, so loading it would be another error)."""
    from core.cli import main

    base = ["--model", str(tmp_path / "no-model"), "--task", "antonym"]
    assert main(["predict", *base, "--script", str(tmp_path / "nowhere" / "s.py")]) == 2
    err = capsys.readouterr().err
    assert "--script" in err and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert main(["attribution", *base, "--script", str(tmp_path / "s.py"), "--script-layers", "one"]) == 2
    assert "--script-layers" in capsys.readouterr().err


# --- the default model (slow): predict, attribution on two layers, the function vector --------

SLOW_SETTINGS = PromptSettings(n_shots=5, n_prompts=6, seed=0)
SLOW_LAYERS = [3, 9]  # the script patches these layers' heads only (one forward per head)


@pytest.fixture(scope="module")
def default_results(tmp_path_factory):
    from core.attribution import indirect_effects

    lm = load_model()  # the default model, as the app loads it
    task = load_builtin("antonym")
    wb = fv.build_workbench(lm, task, SLOW_SETTINGS)
    heads = [(l, h) for l in SLOW_LAYERS for h in range(lm.arch.n_heads)]
    at = indirect_effects(lm, wb.prompts, wb.stats.mean_heads, heads=heads)  # the app's fast path
    pred = predict(lm, task, SLOW_SETTINGS)
    fv_heads = at.top_heads(4)  # NaN (not computed) cells sort last
    cases = [
        (
            "default-predict",
            predict_script(lm.spec, task.name, pred.prompts.clean, pred.prompts.zero_shot, pred.prompts.targets),
            {"model": lm.model_id, "task": task.name, **pred.to_json()},
        ),
        (
            "default-attribution",
            attribution_script(lm.spec, task, SLOW_SETTINGS, "prob", SLOW_LAYERS),
            {"model": lm.model_id, "task": task.name, "metric": "prob", "cie": at.cie.tolist()},
        ),
        # the layer chosen as the app does; generated answers on a model that gets some right
        fv_case("default-fv", lm, wb, fv_heads, "auto", 1.0, n_eval=12),
    ]
    return run_cases(cases, tmp_path_factory.mktemp("default_scripts"))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["default-predict", "default-attribution", "default-fv"])
def test_exported_script_reproduces_the_app_on_the_default_model(default_results, case):
    got, expected = default_results[case]
    if case == "default-attribution":  # only the app's numbers that the script recomputes
        got = {k: got[k] for k in ("model", "task", "metric", "cie", "top_heads")}
    if case == "default-fv":
        assert_prints_every_number(got, expected, case)
    assert_matches(got, expected, case)


def test_inlined_values_read_back_exactly():
    """What a script inlines is the same value when Python reads it (long values wrapped)."""
    import ast

    from core.scripts.common import literal

    value = {
        "prompts": ['Q: it\'s "hot"\nA: cold', "x" * 150, "\\ \t é"],
        "heads": [[20, 5], [14, 1]] * 30,
        "numbers": [0.1, -2.5e-08, 1e300, 3, True, None] * 20,
        "exponents": [-(10.0**-k) for k in range(5, 60)],  # a wrap never splits -1e-05
        "one": ("only " * 30,),
        "empty": [],
    }
    text = literal(value)
    assert ast.literal_eval(text) == value
    assert max(len(line) for line in text.splitlines() if "'" not in line) <= 100  # long strings stay whole
