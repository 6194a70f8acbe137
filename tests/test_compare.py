"""Corrupted prompts by random labels, and tasks compared (core.compare, its CLI and its page).

The comparison's maths is checked on a tiny random Llama against independent computations:
each task's own attribution, the cosine of the vectors, the Jaccard index of the head sets,
and core.fv.evaluate for the diagonal of the transfer matrix. A random model gets every real
task wrong, so the two tasks here are made of the tiny model's own zero-shot answers: the
zero-shot accuracy is 1 and a function vector moves it, which gives the transfer numbers
something to be wrong about.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest
import torch

from core import fv, layer_sweep
from core.checks import check_corruption
from core.cli import build_parser, main
from core.compare import Comparison, compare_tasks, held_out_prompts, jaccard
from core.errors import UserInputError
from core.inference import encode, first_token_ids, run_forward
from core.prompts import DEFAULT_SEPARATOR, DEFAULT_TEMPLATE, PromptSettings, icl_prompts, render_query, split_task
from core.tasks import builtin_names, load_builtin, validate

pytestmark = pytest.mark.usefixtures("single_thread")

# --- corrupted prompts: shuffled or random labels ------------------------------------------------


def _labels(prompt: str) -> list[tuple[str, str]]:
    """``(input, label)`` of each demo of a prompt in the default template."""
    blocks = prompt.split(DEFAULT_SEPARATOR)[:-1]  # the last block is the query
    return [tuple(b.removeprefix("Q: ").split("\nA: ")) for b in blocks]


def test_random_labels_are_other_outputs_of_the_task_and_seeded():
    task = load_builtin("antonym")
    settings = PromptSettings(n_shots=6, n_prompts=12, corruption="random")
    rand = icl_prompts(task, settings)
    shuf = icl_prompts(task, dataclasses.replace(settings, corruption="shuffle"))
    train = split_task(task, settings.seed).train
    # everything but the corrupted prompts is the same as with shuffled labels
    for name in ("queries", "demos", "clean", "zero_shot", "targets"):
        assert getattr(rand, name) == getattr(shuf, name), name
    not_a_permutation = 0
    for query, demos, prompt in zip(rand.queries, rand.demos, rand.corrupted):
        pool = {p.output for p in train if p.input != query.input}
        pairs = _labels(prompt)
        assert [x for x, _ in pairs] == [d.input for d in demos]  # the demos' inputs, in order
        for (_, label), demo in zip(pairs, demos):
            assert label in pool and label != demo.output
        not_a_permutation += Counter(y for _, y in pairs) != Counter(d.output for d in demos)
    assert not_a_permutation > 0  # not the shuffle under another name
    assert icl_prompts(task, settings).corrupted == rand.corrupted  # seeded
    assert icl_prompts(task, dataclasses.replace(settings, seed=1)).corrupted != rand.corrupted


def test_shuffled_labels_stay_the_default_and_a_permutation():
    assert PromptSettings().corruption == "shuffle"
    ps = icl_prompts(load_builtin("antonym"), PromptSettings(n_shots=5, n_prompts=6))
    for demos, prompt in zip(ps.demos, ps.corrupted):
        assert Counter(y for _, y in _labels(prompt)) == Counter(d.output for d in demos)


def test_a_task_with_one_output_keeps_its_labels():
    task = validate("same", [(f"w{i}", "yes") for i in range(30)])
    ps = icl_prompts(task, PromptSettings(n_shots=3, n_prompts=2, corruption="random"))
    assert ps.corrupted == ps.clean


def test_the_corruption_is_in_the_settings_key_and_provenance():
    shuffle, random_ = PromptSettings(), PromptSettings(corruption="random")
    assert shuffle.key() != random_.key() and shuffle != random_ and hash(shuffle) != hash(random_)
    assert shuffle.to_dict()["corruption"] == "shuffle" and random_.to_dict()["corruption"] == "random"


def test_an_unknown_corruption_is_one_clear_message():
    with pytest.raises(UserInputError, match="Unknown corruption 'swap'.*'shuffle'.*'random'"):
        check_corruption("swap")
    with pytest.raises(UserInputError, match="Unknown corruption"):
        icl_prompts(load_builtin("antonym"), PromptSettings(corruption="swap"))


@pytest.mark.parametrize("command", ["predict", "attribution", "fv", "compare"])
def test_the_cli_takes_the_corruption(command, capsys):
    task = ["--tasks", "antonym,synonym"] if command == "compare" else ["--task", "antonym"]
    args = build_parser().parse_args([command, *task, "--corruption", "random"])
    assert args.corruption == "random"
    assert build_parser().parse_args([command, *task]).corruption == "shuffle"
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, *task, "--corruption", "swap"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


# --- tasks compared on a tiny model ------------------------------------------------------------

SETTINGS = PromptSettings(n_shots=2, n_prompts=4)
N_EVAL, TOP_K = 30, 3


@pytest.fixture(scope="module")
def own_tasks(tiny_llama):
    """Two tasks whose answers are the tiny model's own zero-shot top-1 tokens (whole words
    with a leading space), on the built-in tasks' inputs: zero-shot accuracy 1 on both."""
    lm = tiny_llama
    words = sorted({p.input for name in builtin_names() for p in load_builtin(name).pairs})
    top = run_forward(lm, encode(lm, [render_query(DEFAULT_TEMPLATE, w) for w in words])).logits.argmax(-1)
    rows = []
    for word, token in zip(words, top.tolist()):
        text = lm.tokenizer.decode([token])
        if text.startswith(" ") and text.strip() and int(first_token_ids(lm, [text])[0]) == token:
            rows.append((word, text[1:]))
    assert len(rows) >= 60, len(rows)
    return [validate("own_a", rows[0::2]), validate("own_b", rows[1::2])]


@pytest.fixture(scope="module")
def independent(tiny_llama, own_tasks):
    """Each task's workbench and attribution, computed directly (not through core.compare)."""
    wbs = [fv.build_workbench(tiny_llama, t, SETTINGS) for t in own_tasks]
    for wb in wbs:
        fv.run_attribution(tiny_llama, wb)
    return wbs


@pytest.fixture(scope="module")
def compared(tiny_llama, own_tasks) -> tuple[Comparison, list[tuple[float, str]]]:
    reports: list[tuple[float, str]] = []
    result = compare_tasks(
        tiny_llama, own_tasks, SETTINGS, top_k=TOP_K, n_eval=N_EVAL, progress=lambda f, m: reports.append((f, m))
    )
    return result, reports


def test_the_mean_grid_is_the_mean_of_each_tasks_grid(compared, independent):
    result, _ = compared
    grids = torch.stack([wb.attribution.cie for wb in independent])  # [n_tasks, n_layers, n_heads]
    torch.testing.assert_close(result.cie, grids, atol=1e-7, rtol=0)
    torch.testing.assert_close(result.mean_cie, grids.mean(0), atol=1e-7, rtol=0)
    assert result.mean_cie.abs().max() > 0
    best = torch.argmax(grids.mean(0)).item()
    assert result.mean_top_heads(1) == [divmod(best, result.mean_cie.shape[1])]


def test_overlap_and_cosine_are_the_direct_computations(tiny_llama, compared, independent):
    result, _ = compared
    heads = [wb.attribution.top_heads(TOP_K) for wb in independent]
    assert [list(h) for h in result.top_heads] == heads
    shared = len(set(heads[0]) & set(heads[1]))
    j = shared / (2 * TOP_K - shared)
    torch.testing.assert_close(result.top_head_overlap, torch.tensor([[1.0, j], [j, 1.0]]), atol=1e-7, rtol=0)
    assert jaccard([(0, 1), (2, 3)], [(2, 3), (1, 1), (0, 0)]) == 0.25
    a, b = (fv.function_vector_values(tiny_llama, wb.stats.mean_heads, h) for wb, h in zip(independent, heads))
    cos = float(a @ b / (a.norm() * b.norm()))
    torch.testing.assert_close(result.fv_cosine, torch.tensor([[1.0, cos], [cos, 1.0]]), atol=1e-5, rtol=0)


def test_the_transfer_diagonal_is_each_tasks_function_vector_accuracy(tiny_llama, compared, independent):
    result, _ = compared
    for i, wb in enumerate(independent):
        report = fv.evaluate(tiny_llama, wb, wb.attribution.top_heads(TOP_K), layer="auto", n_eval=N_EVAL)
        assert result.layers[i] == report.layer
        assert float(result.transfer[i, i]) == pytest.approx(report.zero_shot_with_fv, abs=1e-9)
        assert float(result.zero_shot[i]) == pytest.approx(report.zero_shot_baseline, abs=1e-9)
        assert result.n_eval[i] == report.n_eval
    assert result.zero_shot.tolist() == [1.0, 1.0]  # the tasks are the model's own answers
    assert ((result.transfer > 0) & (result.transfer < 1)).any()  # the vectors move something


def test_off_diagonal_transfer_at_a_fixed_layer(tiny_llama, own_tasks, independent):
    result = compare_tasks(tiny_llama, own_tasks, SETTINGS, top_k=TOP_K, layer=1, n_eval=N_EVAL)
    assert result.layers == (1, 1) and result.layer_choice == "fixed"
    a = fv.function_vector_values(
        tiny_llama, independent[0].stats.mean_heads, independent[0].attribution.top_heads(TOP_K)
    )
    test_b = held_out_prompts(own_tasks[1], SETTINGS, N_EVAL)
    base, (acc,) = layer_sweep.accuracy_sweep(tiny_llama, test_b.zero_shot, test_b.targets, [(1, a)])
    assert float(result.transfer[0, 1]) == pytest.approx(acc, abs=1e-9)
    assert float(result.zero_shot[1]) == pytest.approx(base, abs=1e-9)


def test_json_keys_intervals_and_progress(compared):
    result, reports = compared
    data = json.loads(json.dumps(result.to_json()))
    for key in ("tasks", "mean_cie", "top_head_overlap", "fv_cosine", "transfer", "transfer_ci", "zero_shot_ci"):
        assert key in data, key
    assert data["tasks"] == ["own_a", "own_b"] and data["overlap_measure"] == "jaccard"
    assert data["layer_choice"] == "auto" and data["settings"]["corruption"] == "shuffle"
    for a in range(2):
        for b in range(2):
            ci = data["transfer_ci"][a][b]
            assert ci["n"] == data["n_eval"][b] and ci["low"] <= data["transfer"][a][b] <= ci["high"]
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert any(m.startswith("own_b: ") for _, m in reports) and any("transfer to own_a" in m for _, m in reports)


def test_random_labels_reach_the_attribution(tiny_llama, own_tasks, compared):
    result, _ = compared
    shuffled = dataclasses.replace(SETTINGS, corruption="random")
    other = compare_tasks(tiny_llama, own_tasks, shuffled, top_k=TOP_K, layer=1, n_eval=5)
    assert other.settings["corruption"] == "random"
    assert not torch.allclose(other.cie, result.cie)


def test_bad_comparisons_are_clear_messages(tiny_llama, own_tasks):
    a, b = own_tasks
    cases = [
        ([a], {}, "Compare 2 to"),
        ([a, a], {}, "'own_a' is listed twice"),
        ([a, b], {"layer": 3}, "Layer 3 is out of range"),
        ([a, b], {"layer": "best"}, "'auto' or a layer number"),
        ([a, b], {"top_k": 0}, "number of heads"),
        ([a, b], {"n_eval": 0}, "test queries"),
    ]
    for tasks, kwargs, message in cases:
        with pytest.raises(UserInputError, match=message):
            compare_tasks(tiny_llama, tasks, SETTINGS, **kwargs)


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_folder(tiny_llama_folder):
    return tiny_llama_folder


def test_cli_compare_writes_the_json(tiny_folder, tmp_path, capsys):
    typed = tmp_path / "typed.txt"
    typed.write_text("\n".join(f"w{i} -> v{i}" for i in range(30)), encoding="utf-8")
    out = tmp_path / "compare.json"
    argv = ["compare", "--model", str(tiny_folder), "--tasks", "antonym,present_past", "--task-files", str(typed)]
    argv += ["--n-shots", "2", "--n-prompts", "3", "--top-k", "2", "--n-eval", "4", "--corruption", "random"]
    assert main([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["tasks"] == ["antonym", "present_past", "typed"]
    for key in ("mean_cie", "top_head_overlap", "fv_cosine", "transfer", "transfer_ci", "zero_shot", "zero_shot_ci"):
        assert key in data, key
    assert len(data["transfer"]) == 3 and all(len(row) == 3 for row in data["transfer"])
    assert data["settings"]["corruption"] == "random" and data["top_k"] == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tasks", "antonym"], "Compare 2 to"),
        (["--tasks", "antonym,nope"], "Unknown task 'nope'"),
        (["--tasks", "antonym,antonym"], "listed twice"),
        (["--tasks", "antonym,synonym", "--layer", "x"], "--layer must be an integer"),
    ],
)
def test_cli_compare_bad_input_is_one_line(argv, message, capsys):
    """Checked before the model loads (the default model id is never read here)."""
    assert main(["compare", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("error: ") and message in err, err


# --- the page (default model) ----------------------------------------------------------------


@pytest.mark.slow
def test_compare_page_runs_built_in_and_typed_tasks(tmp_path, monkeypatch):
    """Two built-in tasks, then one of them with the sidebar's typed task (its attribution is
    reused from the store). A fixed layer: the auto layer costs a sweep per task (tested above)."""
    from app_helpers import button, errors, frame, start

    seed = {"n_prompts": 3, "n_shots": 3, "compare_tasks": ["antonym", "capitalize"], "compare_n_eval": 8}
    at = start(tmp_path, monkeypatch, **seed, compare_layer=15)
    at.switch_page("../pages/compare_tasks.py")
    at.run()
    assert not at.exception and not errors(at)
    assert any("press Run" in i.value for i in at.info)
    button(at, "Run").click().run()
    assert not at.exception and not errors(at)
    table = frame(at, "own vector")
    assert list(table["task"]) == ["antonym", "capitalize"] and list(table["layer"]) == [15, 15]
    assert {c.key for c in at.get("plotly_chart")} >= {"compare_mean_cie", "compare_overlap", "compare_transfer"}
    # the sidebar's typed task is an option too
    at.sidebar.radio(key="task_source").set_value("Type examples").run()
    picker = at.multiselect(key="_w_compare_tasks")
    assert "typed (sidebar)" in picker.options
    picker.set_value(["antonym", "typed (sidebar)"]).run()
    assert any("changed since the last Run" in i.value for i in at.info)
    button(at, "Run").click().run()
    assert not at.exception and not errors(at)
    assert list(frame(at, "own vector")["task"]) == ["antonym", "typed"]
    # one task is not a comparison: a message, not a traceback
    at.multiselect(key="_w_compare_tasks").set_value(["antonym"]).run()
    button(at, "Run").click().run()
    assert not at.exception and any("Compare 2 to" in e for e in errors(at))
