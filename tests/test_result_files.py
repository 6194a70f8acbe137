"""The disk tier of results (core.result_files, core.result_codec) on tiny models: exact round
trips of every stored type, keys that see every part, eviction, bad files skipped with a
warning (never pickle), a restarted store that answers without computing, and the CLI's
``warm`` then ``from_cache``."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from core import fv, result_files
from core.cli import main as cli_main
from core.models import ModelSpec
from core.prompts import PromptSettings
from core.result_codec import REGISTRY, Record, decode, encode, type_name
from core.result_files import MISSING, ResultFiles, ResultFileWarning, canonical_key
from core.tasks import load_builtin
from dashboard.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = PromptSettings(n_shots=2, n_prompts=4)


def same(a, b) -> bool:
    """Exact equality through dataclasses, containers and tensors (dtype and shape included)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return a == b


@pytest.fixture(scope="module")
def results(tiny_llama) -> dict:
    """One result of every kind the dashboard stores, on the tiny Llama (a few seconds)."""
    from core import compare, induction, steer
    from core.additions import Addition, addition_sum
    from core.anatomy import anatomy
    from core.attention import attention_pattern
    from core.predict import predict
    from core.prompts import held_out_prompts
    from core.query_effects import query_effects
    from core.report import ReportOptions, build_report
    from core.sweep import sweep

    lm, task = tiny_llama, load_builtin("antonym")
    wb = fv.build_workbench(lm, task, SETTINGS)
    at = fv.indirect_effects(lm, wb.prompts, wb.stats.mean_heads)
    direction = torch.randn(lm.arch.d_model, generator=torch.Generator().manual_seed(0))
    scores = induction.induction_scores(lm)
    out = {
        "workbench": wb,
        "attribution": at,
        "attributed workbench": dataclasses.replace(wb, attribution=at),
        "prediction": predict(lm, task, SETTINGS),
        "hvector": fv.hvector_sweep(lm, wb, 6),
        "fv": fv.evaluate(lm, dataclasses.replace(wb, attribution=at), at.top_heads(2), n_eval=6),
        "induction": scores,
        "heads": induction.compare_heads(
            lm, induction.ablation_prompts(task, SETTINGS, 4), wb.stats.mean_heads, at, scores, n_max=2
        ),
        "compare": compare.compare_tasks(
            lm, [task, load_builtin("present_past")], SETTINGS, top_k=2, layer=1, n_eval=4
        ),
        "report": build_report(lm, task, SETTINGS, ReportOptions(top_k=2, n_eval=4, max_new_tokens=3)),
        "steer": steer.generate_pair(lm, ["I hate you because"], direction, 1, 2.0, "last", 3),
        "sweep": sweep(lm, "I hate you because", {1: direction}, [1.0, -2.0], "last", 3, target_word="love"),
        "attention": attention_pattern(lm, "hot -> cold", 1),
        "decode": fv.decode_vector(lm, direction, 5),
        "anatomy": anatomy(lm, "The Eiffel Tower is in", 1),
        "query_effects": query_effects(lm, held_out_prompts(task, SETTINGS, 4)[1], 1, direction, 4),
        "additions key": (Addition("Love ", 1, 2.0),),  # the lesson's store keys hold these
        "additions": addition_sum(lm, [Addition("Love ", 1, 2.0), Addition("Hate", 1, -2.0)]),
        "scalars": {"nan": float("nan"), "inf": -math.inf, 3: (None, True, "x"), (1, 2): [0.1]},
    }
    return out


def test_every_result_type_round_trips_exactly(results):
    seen: set[str] = set()

    def types(value) -> None:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            seen.add(type_name(type(value)))
            for f in dataclasses.fields(value):
                types(getattr(value, f.name))
        elif isinstance(value, (list, tuple)):
            for v in value:
                types(v)
        elif isinstance(value, dict):
            for k, v in value.items():
                types(k)
                types(v)

    for name, value in results.items():
        tree, tensors = encode(value)
        text = json.dumps(tree)  # plain JSON: no object survives but through the registry
        back = decode(json.loads(text), tensors)
        assert same(back, value), name
        types(value)
    # the Decoding dataclass lives in steering keys, not results
    missing = set(REGISTRY) - seen - {"core.steer:Decoding"}
    assert not missing, f"registered types never round-tripped: {missing}"


def test_a_stored_file_gives_back_the_same_result_and_records_without_classes(results, tiny_llama_folder):
    files = ResultFiles()
    key = ("workbench", ModelSpec(str(tiny_llama_folder)), load_builtin("antonym"), SETTINGS)
    assert files.load(key) is MISSING
    assert files.save(key, results["workbench"])
    assert same(files.load(key), results["workbench"])
    record = files.load(key, classes=False)
    assert isinstance(record, Record) and isinstance(record.stats, Record)
    assert torch.equal(record.stats.mean_heads, results["workbench"].stats.mean_heads)


def test_unregistered_types_are_refused_both_ways():
    @dataclasses.dataclass
    class Stranger:
        x: int = 1

    with pytest.raises(TypeError, match="not a registered"):
        encode(Stranger())
    with pytest.raises(ValueError, match="not a result type"):
        decode({"$": "dc", "type": "os:system", "v": {"command": "echo hi"}}, {})


def _key(folder: Path, **changes) -> str | None:
    task = changes.pop("task", load_builtin("antonym"))
    settings = changes.pop("settings", SETTINGS)
    spec = changes.pop("spec", ModelSpec(str(folder)))
    params = changes.pop("params", (((1, 2), (0, 3)), "auto", 50, 1.0))
    return canonical_key(("fv", spec, task, settings, "prob", *params))


def test_the_key_changes_with_every_part(tiny_llama_folder, tokenizer, tmp_path, monkeypatch):
    from tests.conftest import save_tiny

    base = _key(tiny_llama_folder)
    assert base is not None and base == _key(tiny_llama_folder)
    task = load_builtin("antonym")
    other_pairs = dataclasses.replace(task, pairs=task.pairs[:-1])
    other_model = save_tiny("gpt2", tokenizer, tmp_path / "gpt2")
    variants = {
        "model weights": _key(other_model, spec=ModelSpec(str(other_model))),
        "dtype": _key(tiny_llama_folder, spec=ModelSpec(str(tiny_llama_folder), dtype="bfloat16")),
        "pairs": _key(tiny_llama_folder, task=other_pairs),
        "template": _key(tiny_llama_folder, settings=dataclasses.replace(SETTINGS, template="{x} = {y}")),
        "seed": _key(tiny_llama_folder, settings=dataclasses.replace(SETTINGS, seed=1)),
        "heads": _key(tiny_llama_folder, params=(((1, 2),), "auto", 50, 1.0)),
        "n_eval": _key(tiny_llama_folder, params=(((1, 2), (0, 3)), "auto", 49, 1.0)),
    }
    monkeypatch.setattr(result_files, "code_version", lambda: "another version")
    variants["code version"] = _key(tiny_llama_folder)
    monkeypatch.undo()
    for part, key in variants.items():
        assert key is not None and key != base, part
    assert len(set(variants.values())) == len(variants)
    # the same folder with one weight changed is another model
    weights = other_model / "model.safetensors"
    before = _key(other_model, spec=ModelSpec(str(other_model)))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert _key(other_model, spec=ModelSpec(str(other_model))) != before
    # a model whose identity cannot be told without loading it is never stored
    assert canonical_key(("fv", ModelSpec("no-such/model-anywhere"), task)) is None
    (tmp_path / "not_a_model").mkdir()  # a folder without config.json is never hashed
    (tmp_path / "not_a_model" / "big.bin").write_bytes(b"x")
    assert canonical_key(("fv", ModelSpec(str(tmp_path / "not_a_model")), task)) is None


def test_the_folder_is_bounded_oldest_first(tiny_llama_folder, tmp_path):
    spec = ModelSpec(str(tiny_llama_folder))
    big = torch.zeros(25_000)  # 100 kB a file
    files = ResultFiles(tmp_path / "bounded", max_bytes=350_000)
    for i in range(3):
        assert files.save(("x", spec, i), big)
        os.utime(files.path_for(canonical_key(("x", spec, i))), (1000 + i, 1000 + i))
    assert files.load(("x", spec, 0)) is not MISSING  # reading makes it the most recent
    files.save(("x", spec, 3), big)
    assert [files.load(("x", spec, i)) is MISSING for i in range(4)] == [False, True, False, False]
    assert files.size() <= 350_000


@pytest.fixture
def stored(tiny_llama_folder, tmp_path):
    files = ResultFiles(tmp_path / "bad")
    key = ("hvector", ModelSpec(str(tiny_llama_folder)), load_builtin("antonym"), SETTINGS, 6)
    files.save(key, {"values": torch.arange(6.0), "note": "fine"})
    return files, key, files.path_for(canonical_key(key))


class _Trap:
    fired = False

    def __reduce__(self):
        return (setattr, (_Trap, "fired", True))


def _forge(meta: dict, tensors: dict | None = None) -> bytes:
    from safetensors.torch import save

    return save(tensors or {}, metadata=meta)


@pytest.mark.parametrize(
    "damage",
    ["truncated", "garbage", "empty", "pickle", "foreign safetensors", "another key", "foreign type", "lost tensor"],
)
def test_a_bad_file_is_skipped_with_a_warning(stored, damage):
    files, key, path = stored
    good = path.read_bytes()
    canonical = canonical_key(key)
    payload = {
        "truncated": good[: len(good) // 2],
        "garbage": os.urandom(300),
        "empty": b"",
        "pickle": pickle.dumps(_Trap()),
        "foreign safetensors": _forge({"format": "something else"}, {"w": torch.ones(2)}),
        "another key": _forge({"format": result_files.FORMAT, "key": canonical + " ", "value": "null"}),
        "foreign type": _forge(
            {
                "format": result_files.FORMAT,
                "key": canonical,
                "value": json.dumps({"$": "dc", "type": "os:system", "v": {}}),
            }
        ),
        "lost tensor": _forge(
            {"format": result_files.FORMAT, "key": canonical, "value": json.dumps({"$": "tensor", "v": "t9"})}
        ),
    }[damage]
    path.write_bytes(payload)
    with pytest.warns(ResultFileWarning, match="skipped"):
        assert files.load(key) is MISSING
    assert not _Trap.fired
    # and the store computes instead, replacing the bad file
    store = ResultStore(10, 10**6, files=files)
    with pytest.warns(ResultFileWarning):
        assert store.get(key, lambda: "recomputed") == "recomputed" and store.computed == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert files.load(key) == "recomputed"


def test_a_restarted_store_answers_without_computing(tiny_llama_folder, results):
    key = ("attribution", ModelSpec(str(tiny_llama_folder)), load_builtin("antonym"), SETTINGS, "prob")
    calls = []

    def make():
        calls.append(1)
        return results["attribution"]

    first = ResultStore(10, 10**8)
    first.get(key, make)
    restarted = ResultStore(10, 10**8)  # same folder (FV_STUDIO_RESULTS), empty memory
    got = restarted.get(key, make)
    assert calls == [1] and restarted.computed == 0 and restarted.loaded == 1
    assert same(got, results["attribution"])
    assert restarted.clear() == 1 and len(restarted) == 0
    ResultStore(10, 10**8).get(key, make)
    assert calls == [1, 1]  # cleared on disk too


def _cli(argv: list[str], capsys) -> dict:
    assert cli_main(argv) == 0
    return json.loads(capsys.readouterr().out)


TINY = ["--n-shots", "2", "--n-prompts", "4"]


def test_warm_then_the_cli_answers_from_cache_with_the_same_numbers(tiny_llama_folder, tmp_path, monkeypatch, capsys):
    model = ["--model", str(tiny_llama_folder)]
    uncached_dir = tmp_path / "uncached"
    monkeypatch.setenv("FV_STUDIO_RESULTS", str(uncached_dir))
    fresh = _cli(["attribution", *model, "--task", "antonym", *TINY], capsys)
    fresh_fv = _cli(["fv", *model, "--task", "antonym", *TINY, "--heads", "10", "--n-eval", "50"], capsys)
    assert not fresh["from_cache"] and not fresh_fv["from_cache"]
    monkeypatch.setenv("FV_STUDIO_RESULTS", str(tmp_path / "warmed"))
    assert cli_main(["warm", *model, "--tasks", "antonym", *TINY]) == 0
    captured = capsys.readouterr()
    assert "warm [1/2] antonym: 0 of 8 results already stored, 8 computed" in captured.err
    warmed = json.loads(captured.out)
    assert warmed["tasks"][0]["computed"][:5] == ["prediction", "workbench", "attribution", "hvector", "fv"]
    assert warmed["lesson"]["computed"][0] == "lesson_trace"
    cached = _cli(["attribution", *model, "--task", "antonym", *TINY], capsys)
    cached_fv = _cli(["fv", *model, "--task", "antonym", *TINY, "--heads", "10", "--n-eval", "50"], capsys)
    predicted = _cli(["predict", *model, "--task", "antonym", *TINY], capsys)
    assert cached["from_cache"] and cached_fv["from_cache"] and predicted["from_cache"]
    for a, b in ((fresh, cached), (fresh_fv, cached_fv)):
        assert {k for k in a if k not in ("seconds", "attribution_seconds", "from_cache")} == {
            k for k in b if k not in ("seconds", "attribution_seconds", "from_cache")
        }
        for k in a:
            if k not in ("seconds", "attribution_seconds", "from_cache"):
                assert a[k] == b[k], k
    # a second warm finds everything stored
    assert cli_main(["warm", *model, "--tasks", "antonym", *TINY]) == 0
    err = capsys.readouterr().err
    assert "8 of 8 results already stored, 0 computed" in err and "warm [2/2] lesson: 9 of 9" in err


def test_the_cached_attribution_loads_neither_the_model_nor_nnsight(tiny_llama_folder, capsys):
    """The < 2 s answer: the cached path must not import nnsight/transformers (a subprocess)."""
    args = ["attribution", "--model", str(tiny_llama_folder), "--task", "antonym", *TINY]
    assert not _cli(args, capsys)["from_cache"]  # computes and stores
    env = dict(os.environ)  # this test's results folder
    code = (
        "import json, sys; from core.cli import main; rc = main(sys.argv[1:]); "
        "heavy = [m for m in ('nnsight', 'transformers') if m in sys.modules]; "
        "sys.stderr.write(json.dumps(heavy)); sys.exit(rc)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["from_cache"] is True
    assert json.loads(run.stderr.strip().splitlines()[-1]) == []


def test_warm_names_unknown_tasks_in_one_line(capsys):
    assert cli_main(["warm", "--tasks", "antonym,no_such_task"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --tasks: unknown task no_such_task") and len(err.strip().splitlines()) == 1


def test_the_sidebar_clears_memory_and_disk(tiny_llama_folder, tmp_path, monkeypatch, result_files_folder):
    """Model & prompts on the tiny model stores its prediction on disk; *Clear cached results*
    empties the folder and says so; the page then computes it again."""
    from dashboard import compute
    from tests.app_helpers import button, start

    at = start(tmp_path, monkeypatch, model_id=str(tiny_llama_folder), n_prompts=4, n_shots=2)
    assert not at.exception
    n_files = len(ResultFiles().files())
    assert n_files >= 1
    before = compute.store().computed
    button(at, "Clear cached results").click().run()
    said = [s.value for s in at.sidebar.success if "Cleared every cached result" in s.value]
    assert said == [f"Cleared every cached result: memory, and {n_files} result files on disk."]
    assert compute.store().computed > before  # memory was emptied too: the page computed again


def test_a_shared_server_leaves_clearing_to_the_operator(tiny_llama_folder, tmp_path, monkeypatch, capsys):
    """With the operator's model list set, no user may wipe the results warmed for a class: the
    button is gone and the sidebar names the command; ``warm --clear`` deletes the files."""
    from dashboard import compute
    from tests.app_helpers import start

    compute.store().clear()  # an earlier test's prediction in memory would leave the folder empty
    monkeypatch.setenv("FV_STUDIO_ALLOWED_MODELS", str(tiny_llama_folder))
    at = start(tmp_path, monkeypatch, model_id=str(tiny_llama_folder), n_prompts=4, n_shots=2)
    assert not at.exception
    assert not [b for b in at.sidebar.button if b.label == "Clear cached results"]
    assert any("warm --clear" in c.value for c in at.sidebar.caption)
    n_files = len(ResultFiles().files())
    assert n_files >= 1
    assert cli_main(["warm", "--clear"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == n_files
    assert ResultFiles().files() == []


def _in_a_fresh_process(code: str) -> str:
    """Run ``code`` in a new interpreter at the repository root (``serve.main`` runs first in a
    process, before anything imports nnsight); its stdout."""
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def test_serve_loads_the_model_before_streamlit_starts_its_server():
    out = _in_a_fresh_process(
        "import json, sys\n"
        "import streamlit.web.bootstrap as bootstrap, streamlit.web.cli as cli\n"
        "from dashboard import serve\n"
        "calls = []\n"
        "serve.preload = lambda: calls.append('preload')\n"
        "bootstrap.run = lambda *args, **kwargs: calls.append('server')\n"
        "def streamlit_main():  # what `streamlit run` does once it has read its config\n"
        "    calls.append(list(sys.argv))\n"
        "    bootstrap.run(str(serve.APP), False, [], {})\n"
        "cli.main = streamlit_main\n"
        "serve.main(['--server.port', '8599'])\n"
        "print(json.dumps(calls))\n"
    )
    app = str(ROOT / "dashboard" / "app.py")
    assert json.loads(out) == [["streamlit", "run", app, "--server.port", "8599"], "preload", "server"]


def test_the_servers_anyio_classes_survive_the_preloads_nnsight():
    """nnsight gives every object a ``save`` method; anyio's typed-attribute classes, defined
    after that, refuse it and the server's lifespan fails: serve imports them first."""
    out = _in_a_fresh_process(
        "import streamlit.web.cli as cli\n"
        "from dashboard import serve\n"
        "cli.main = lambda: None\n"
        "serve.main([])\n"
        "import nnsight, anyio._backends._asyncio\n"
        "print('ok')\n"
    )
    assert out.strip() == "ok"


def test_the_preload_loads_the_sidebars_default_model(monkeypatch):
    from core.models import DEFAULT_MODEL
    from dashboard import serve, server

    loaded = []
    monkeypatch.setattr(server, "get_model", loaded.append)
    monkeypatch.setattr(result_files, "model_identity", lambda spec: "x")
    serve.preload()
    assert loaded == [ModelSpec(DEFAULT_MODEL)]


def test_the_pages_answer_from_what_warm_stored(tiny_llama_folder, tmp_path, monkeypatch, capsys):
    """``warm``'s keys are the pages' keys: after it, Model & prompts, Head attribution, Task
    vectors, Function vector, the five lesson steps and the recipes on their defaults compute
    nothing (a fresh memory)."""
    from dashboard import compute
    from dashboard.lesson import step
    from tests.app_helpers import button, errors, start

    assert cli_main(["warm", "--model", str(tiny_llama_folder), "--tasks", "antonym"]) == 0
    capsys.readouterr()
    store = compute.store()
    store.data.clear()  # memory only, as on a restarted server; the disk keeps what warm wrote
    computed, loaded = store.computed, store.loaded
    at = start(tmp_path, monkeypatch, model_id=str(tiny_llama_folder))
    for page in ("head_attribution", "task_vectors", "function_vector"):
        at.switch_page(f"../pages/{page}.py").run()
        assert not at.exception, page
    assert store.computed == computed
    assert store.loaded - loaded == 5  # prediction, workbench, attribution, hvector, fv
    # the five lesson steps on their defaults, then two recipes: everything comes from disk
    for n, press in enumerate(
        (
            "Run the trace",
            "Build the h-vector and sweep the layers",
            "Find the heads and build the function vector",
            "Steer",
            "Build from 6 pairs and steer",
        ),
        1,
    ):
        at.switch_page(step(n).path).run()
        button(at, press).click().run()
        assert not at.exception and not errors(at), n
        assert store.computed == computed, f"lesson step {n} computed something warm did not store"
    for recipe in (
        'The word "hot" means (antonym function vector)',
        "The Eiffel Tower is in Rome (activation addition)",
        "Weddings (activation addition)",
    ):
        at.sidebar.selectbox(key="recipe_choice").set_value(recipe).run()
        [apply] = [b for b in at.sidebar.button if b.label == "Apply"]
        apply.click().run()
        assert not at.exception and not errors(at) and at.session_state["recipe_active"] == recipe
        assert store.computed == computed, recipe
    assert store.loaded - loaded == 5 + 9 + 3  # the lesson's 9 task-free results and antonym's 3
