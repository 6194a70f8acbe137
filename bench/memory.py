"""Memory over a long session: the app driven through N cycles of new work, peak and growth.

Each cycle is what a student does again and again with new settings (a new seed, so nothing
is cached): predictions on Model & prompts, the head heatmap, a function vector evaluated and
then used to steer a new prompt. The app runs in this process under Streamlit's AppTest, so
the bounded result store (dashboard.compute) is the one the server uses.

`python bench/memory.py [--cycles 20] [--prompts 4] [--shots 3]` writes bench/memory.json;
tests/test_memory.py runs the same cycles (slow-marked) and checks the bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
OUT = ROOT / "bench" / "memory.json"


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MiB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _check(at, where: str) -> None:
    problems = [e.value for e in at.error] + [e.value for e in at.sidebar.error]
    if at.exception or problems:
        raise RuntimeError(f"{where}: {[e.value for e in at.exception] or problems}")


def _button(at, label: str):
    return next(b for b in at.button if b.label == label)


FV_LAYER = 15  # about half-way up the default model's 30 layers, where its vectors work


def cycles(n: int = 20, n_prompts: int = 4, n_shots: int = 3, data_dir: str | None = None, log=print) -> list[dict]:
    """Run ``n`` cycles; one record per cycle: seconds, RSS now and peak, result-store size."""
    from streamlit.testing.v1 import AppTest

    from dashboard import compute

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FV_STUDIO_DATA"] = data_dir or tmp
        at = AppTest.from_file(APP, default_timeout=900)
        # a fixed function-vector layer: the cycles measure memory, and the automatic choice
        # (a sweep over up to 100 queries x every layer) would double each cycle's time
        at.session_state["fv_layer"] = FV_LAYER
        at.run()
        _check(at, "first run")
        at.sidebar.slider(key="n_prompts").set_value(n_prompts).run()
        at.sidebar.slider(key="n_shots_slider").set_value(n_shots).run()
        records = []
        for i in range(n):
            t0 = time.perf_counter()
            at.switch_page("../pages/model_prompts.py")
            at.sidebar.number_input(key="seed").set_value(i + 1).run()  # new prompts: nothing cached
            _check(at, f"cycle {i}: Model & prompts")
            at.switch_page("../pages/head_attribution.py")
            at.run()
            _check(at, f"cycle {i}: Head attribution")
            at.switch_page("../pages/function_vector.py")
            at.run()
            _check(at, f"cycle {i}: Function vector")
            at.text_input(key="fv_name").set_value(f"fv_cycle_{i}")
            _button(at, "Save to the library").click().run()
            _check(at, f"cycle {i}: save")
            at.switch_page("../pages/steer.py")
            at.run()
            at.selectbox(key="_w_steer_vector").set_value(f"fv_cycle_{i}").run()
            at.text_area(key="_w_steer_prompts").set_value(f"Cycle {i}: the word 'hot' means")
            at.number_input(key="_w_steer_max_new").set_value(8)
            _button(at, "Generate").click().run()
            _check(at, f"cycle {i}: Steer")
            now, peak = rss_mb()
            s = compute.store()
            rec = {
                "cycle": i + 1,
                "seconds": round(time.perf_counter() - t0, 2),
                "rss_mb": round(now, 1),
                "peak_mb": round(peak, 1),
                "store_entries": len(s),
                "store_mb": round(s.bytes / 2**20, 2),
            }
            records.append(rec)
            log(json.dumps(rec))
        return records


def summary(records: list[dict]) -> dict:
    """Peak, and growth of the floor: the lowest RSS of the last quarter of the cycles minus the
    lowest of the second quarter. One cycle's transient tensors and the allocator's caching
    move RSS by 100-200 MiB from cycle to cycle; what memory returns to between them only
    rises if something is kept."""
    import statistics

    q = max(len(records) // 4, 1)
    early = min(r["rss_mb"] for r in records[q : 2 * q])
    late = min(r["rss_mb"] for r in records[-q:])
    return {
        "cycles": len(records),
        "peak_mb": max(r["peak_mb"] for r in records),
        "rss_first_cycle_mb": records[0]["rss_mb"],
        "rss_floor_second_quarter_mb": early,
        "rss_floor_last_quarter_mb": late,
        "growth_mb": round(late - early, 1),
        "rss_range_mb": [min(r["rss_mb"] for r in records), max(r["rss_mb"] for r in records)],
        "store_entries_max": max(r["store_entries"] for r in records),
        "store_mb_max": max(r["store_mb"] for r in records),
        "seconds_per_cycle": round(statistics.median(r["seconds"] for r in records), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--shots", type=int, default=3)
    args = ap.parse_args()
    records = cycles(args.cycles, args.prompts, args.shots)
    result = {"settings": vars(args), "summary": summary(records), "cycles": records}
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
