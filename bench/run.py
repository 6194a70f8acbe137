"""`make bench`: speed and quality figures on the default model, written to bench/results.json.

Timings are wall-clock on whatever machine runs this; ratios are measured in the same run.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results.json"
QUICK = "--quick" in sys.argv  # skip the per-task table and the scaling grid
FV_TABLE_ONLY = "--fv-table" in sys.argv  # only the per-task table, merged into results.json


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def cold_load_seconds() -> float:
    """First load in a fresh cache folder: dequantize the GGUF, write the copy, load it."""
    with tempfile.TemporaryDirectory() as tmp:
        code = "import time,core.models as m;t=time.perf_counter();m.load_model();print(time.perf_counter()-t)"
        env = {**os.environ, "FV_STUDIO_CACHE": tmp}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])


def shared_model_figures(lm, vector) -> dict:
    """How long a short computation waits for its turn behind a long one (core.turns).

    A 200-token steered generation (pieces of core.steer.TOKENS_PER_TURN tokens) runs in one
    thread; one second in, another thread runs a one-prompt forward, as a second user's short
    computation would. Its wait is its time minus the same forward's time alone. Also the cost
    of generating in pieces: the same generation in one piece, same run.
    """
    import threading

    from core import steer
    from core.inference import encode, run_forward

    prompt = ["When you think of Netherlands, you usually think of"]
    enc = encode(lm, ["The Eiffel Tower is in the city of"])
    run_forward(lm, enc)
    _, alone = timed(lambda: run_forward(lm, enc))
    out: dict = {"short_forward_alone_s": alone}

    def generate() -> None:
        steer.generate_pair(lm, prompt, vector, 15, 1.0, "last", 200)

    gen = threading.Thread(target=generate)
    t0 = time.perf_counter()
    gen.start()
    time.sleep(1.0)
    _, behind = timed(lambda: run_forward(lm, enc))
    gen.join()
    out["generation_200_tokens_in_pieces_s"] = time.perf_counter() - t0
    out["short_forward_wait_behind_generation_s"] = behind - alone
    pieces = steer.TOKENS_PER_TURN
    try:
        steer.TOKENS_PER_TURN = 10**6
        _, out["generation_200_tokens_one_piece_s"] = timed(generate)
    finally:
        steer.TOKENS_PER_TURN = pieces
    _, out["generation_200_tokens_pieces_alone_s"] = timed(generate)
    out["pieces_overhead_ratio"] = (
        out["generation_200_tokens_pieces_alone_s"] / out["generation_200_tokens_one_piece_s"]
    )
    return out


def fv_table(lm, settings, names=None) -> tuple[list[dict], dict]:
    """Function vectors on every built-in task (top 10 heads, layer chosen automatically, never
    on test queries), scored on held-out test queries: first-token and whole-answer (generated)
    accuracy with their 95% intervals, and how far the chosen layer's test accuracy is from the
    best layer's on the same test queries (the gap the layer choice is judged by)."""
    from core import fv
    from core.tasks import builtin_names, load_builtin

    table = []
    for name in names or builtin_names():
        t0 = time.perf_counter()
        wbt = fv.build_workbench(lm, load_builtin(name), settings)
        fv.run_attribution(lm, wbt)
        rep = fv.evaluate(lm, wbt, wbt.attribution.top_heads(10), layer="auto", n_eval=50)
        acc = rep.accuracy
        best = rep.best_test_layer
        table.append(
            {
                "task": name,
                "icl": rep.icl_accuracy,
                "zero_shot": rep.zero_shot_baseline,
                "zero_shot_fv": rep.zero_shot_with_fv,
                "zero_shot_fv_ci": acc("zero_shot_with_fv").to_json(),
                "layer": rep.layer,
                "best_test_layer": best,
                "best_test_accuracy": rep.zero_shot_by_layer[best],
                "layer_gap": rep.zero_shot_by_layer[best] - rep.zero_shot_with_fv,
                "shuffled": rep.shuffled_baseline,
                "shuffled_fv": rep.shuffled_with_fv,
                "zero_shot_generation": rep.zero_shot_generation_accuracy,
                "zero_shot_fv_generation": rep.zero_shot_with_fv_generation_accuracy,
                "zero_shot_fv_generation_ci": acc("zero_shot_with_fv_generation_accuracy").to_json(),
                "generation_max_new_tokens": rep.generation_max_new_tokens,
                "n_eval": rep.n_eval,
                "n_layer_choice": rep.n_valid,
                "layer_choice_by_layer": rep.valid_by_layer,
                "test_by_layer": rep.zero_shot_by_layer,
                "top_head": list(wbt.attribution.top_heads(1)[0]),
                "evaluate_s": rep.seconds,
                "task_s": time.perf_counter() - t0,
            }
        )
        print(json.dumps({k: v for k, v in table[-1].items() if not k.endswith("by_layer")}), flush=True)
        if len(table) == 1:  # the cost generation scoring adds to fv.evaluate, timed once
            from core.generation_scoring import score_generations
            from core.prompts import build_prompts, split_task

            splits = split_task(wbt.task, settings.seed)
            test = build_prompts(splits.test, splits.train, settings, n_prompts=min(50, len(splits.test)))
            _, gen_s = timed(
                lambda test=test, rep=rep: score_generations(
                    lm, test.zero_shot, test.targets, rep.vector.values, rep.layer, rep.generation_case_sensitive
                )
            )
    gaps = [r["layer_gap"] for r in table]
    summary = {
        "mean_layer_gap": sum(gaps) / len(gaps),
        "max_layer_gap": max(gaps),
        "n_tasks": len(table),
        "generation_scoring_s": gen_s,
        "generation_scoring_task": table[0]["task"],
    }
    return table, summary


def print_fv_table(table: list[dict], summary: dict) -> None:
    print("\ntask                     icl   zs   zs+fv (layer) best (layer) gap   gen zs  gen zs+fv  shuf  shuf+fv")
    for r in table:
        print(
            f"{r['task']:<24} {r['icl']:.2f}  {r['zero_shot']:.2f}  {r['zero_shot_fv']:.2f} ({r['layer']:>2})"
            f"    {r['best_test_accuracy']:.2f} ({r['best_test_layer']:>2})  {r['layer_gap']:.2f}"
            f"  {r['zero_shot_generation']:.2f}    {r['zero_shot_fv_generation']:.2f}"
            f"       {r['shuffled']:.2f}  {r['shuffled_fv']:.2f}"
        )
    print(
        f"mean gap {summary['mean_layer_gap']:.3f} (max {summary['max_layer_gap']:.2f}) over {summary['n_tasks']} tasks"
    )


def main_fv_table() -> None:
    """``bench/run.py --fv-table [task ...]``: the per-task table alone, merged into results.json."""
    from core.models import load_model
    from core.prompts import PromptSettings

    names = [a for a in sys.argv[1:] if not a.startswith("--")] or None
    lm = load_model()
    table, summary = fv_table(lm, PromptSettings(n_shots=10, n_prompts=20), names)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results["fv_table"], results["fv_layer_choice"] = table, summary
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print_fv_table(table, summary)


def main() -> None:
    import torch

    from core import fv, layer_sweep
    from core.attribution import indirect_effects
    from core.models import load_model
    from core.predict import predict
    from core.prompts import PromptSettings, build_prompts, split_task
    from core.tasks import load_builtin

    results: dict = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}}
    results["cold_load_s"] = cold_load_seconds()
    load_model()  # imports and page cache warm
    lm, results["warm_load_s"] = timed(load_model)
    settings = PromptSettings(n_shots=10, n_prompts=20)
    task = load_builtin("antonym")
    predict(lm, task, settings)  # first-call overheads
    _, results["predict_20x10shot_s"] = timed(lambda: predict(lm, task, settings))

    wb = fv.build_workbench(lm, task, settings)
    results["prompt_tokens"] = int(max(len(lm.tokenizer(p)["input_ids"]) for p in wb.prompts.corrupted))
    at, results["attribution_fast_s"] = timed(lambda: indirect_effects(lm, wb.prompts, wb.stats.mean_heads))
    layer = 20  # the reference path, one traced forward per head, on one layer's heads
    heads = [(layer, h) for h in range(lm.arch.n_heads)]
    ref, ref_s = timed(lambda: indirect_effects(lm, wb.prompts, wb.stats.mean_heads, method="reference", heads=heads))
    n_all = lm.arch.n_layers * lm.arch.n_heads
    results["attribution_reference_one_layer_s"] = ref_s
    results["attribution_reference_scaled_s"] = ref_s * n_all / len(heads)
    results["attribution_speedup"] = results["attribution_reference_scaled_s"] / results["attribution_fast_s"]
    results["attribution_max_abs_diff_layer20"] = float((ref.cie[layer] - at.cie[layer]).abs().max())

    splits = split_task(task, 0)
    test = build_prompts(splits.test + splits.valid + splits.train, splits.train, settings, n_prompts=50)
    hv = [(l, wb.stats.hvector[l]) for l in range(lm.arch.n_layers)]
    _, results["hvector_sweep_30x50_s"] = timed(
        lambda: layer_sweep.accuracy_sweep(lm, test.zero_shot, test.targets, hv)
    )
    vec = fv.function_vector_values(lm, wb.stats.mean_heads, at.top_heads(10))
    per_layer = [(l, vec) for l in range(lm.arch.n_layers)]
    _, results["fv_sweep_30x50_zero_shot_s"] = timed(
        lambda: layer_sweep.accuracy_sweep(lm, test.zero_shot, test.targets, per_layer)
    )
    _, results["fv_sweep_30x50_shuffled_s"] = timed(
        lambda: layer_sweep.accuracy_sweep(lm, test.corrupted, test.targets, per_layer)
    )

    try:
        from core import steer
        from core.sweep import sweep

        prompt = ["When you think of Netherlands, you usually think of"]
        _, results["steer_pair_40_tokens_s"] = timed(lambda: steer.generate_pair(lm, prompt, vec, 15, 1.0, "last", 40))
        _, results["steer_sweep_5x5_20_tokens_s"] = timed(
            lambda: sweep(
                lm, prompt[0], {l: vec for l in (9, 12, 15, 18, 21)}, [0.5, 1, 2, 4, 8], "last", 20, target_word="cold"
            )
        )
    except ImportError:
        results["steer"] = "core.steer not available"
    from core.report import build_report

    past = load_builtin("present_past")  # the whole Task report, every stage computed (nothing cached)
    report, results["task_report_10shot_20prompts_s"] = timed(lambda: build_report(lm, past, settings))
    results["task_report_stage_s"] = report.stage_seconds
    results["shared_model"] = shared_model_figures(lm, vec)
    print(json.dumps(results["shared_model"]), flush=True)
    results["peak_rss_gb"] = peak_gb()

    if not QUICK:
        # attribution cost as prompts and shots grow (all heads, fast path)
        scaling = []
        for n_shots in (5, 10):
            for n_prompts in (10, 20, 40):
                s = PromptSettings(n_shots=n_shots, n_prompts=n_prompts)
                wbs = fv.build_workbench(lm, task, s)
                width = int(max(len(lm.tokenizer(p)["input_ids"]) for p in wbs.prompts.corrupted))
                _, secs = timed(lambda wbs=wbs: indirect_effects(lm, wbs.prompts, wbs.stats.mean_heads))
                scaling.append({"n_shots": n_shots, "n_prompts": n_prompts, "tokens": width, "seconds": secs})
                print(json.dumps(scaling[-1]), flush=True)
        results["attribution_scaling"] = scaling
        results["fv_table"], results["fv_layer_choice"] = fv_table(lm, settings)
        results["peak_rss_gb"] = peak_gb()

    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {OUT.relative_to(ROOT)}")
    width = max(len(k) for k in results)
    for key, value in results.items():
        if key in (
            "fv_table",
            "fv_layer_choice",
            "machine",
            "attribution_scaling",
            "shared_model",
            "task_report_stage_s",
        ):
            continue
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if "fv_table" in results:
        print_fv_table(results["fv_table"], results["fv_layer_choice"])


if __name__ == "__main__":
    main_fv_table() if FV_TABLE_ONLY else main()
