"""The guided lesson's speed in Chromium: a cold walk-through, a warm one, a warmed CLI request.

    .venv/bin/python bench/lesson.py [--task antonym] [--skip-cold]

On the default model and settings (the sidebar's defaults: the lesson as a class opens it):

1. cold: a fresh server on an empty results folder (``FV_STUDIO_RESULTS``), one browser
   session walks the five steps (tests/lesson_walk.py: each step's button, until its result
   is complete);
2. warm: ``python -m core warm --tasks TASK`` into another empty results folder (timed), then
   a fresh server on it and the same walk;
3. a warmed CLI request: ``python -m core attribution --task TASK`` on that folder, timed from
   the process start to its exit; its JSON must say ``"from_cache": true``.

Writes bench/lesson.json (seconds per step and in total for each walk).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "lesson.json"
sys.path.insert(0, str(ROOT / "tests"))
import browser_helpers as H  # noqa: E402  (tests/browser_helpers.py: server, Chromium, waiting)
import lesson_walk as L  # noqa: E402  (tests/lesson_walk.py: the walk the browser test does)


def walk_on_fresh_server(results: Path) -> dict[str, float]:
    """A fresh ``streamlit run`` on ``results``, one new browser session walking the lesson."""
    from playwright.sync_api import sync_playwright

    os.environ["FV_STUDIO_RESULTS"] = str(results)  # the server inherits it
    data = Path(tempfile.mkdtemp(prefix="fv-bench-lesson-"))
    H.BUSY = L.BUSY  # the lesson's header is a progress bar that stays
    with H.streamlit_app(data, data / "server.log") as url, sync_playwright() as p:
        browser = H.launch(p)
        try:
            return L.walk(H.new_page(browser), url)
        finally:
            browser.close()


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return round(time.monotonic() - t0, 2), done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="antonym", help="the sidebar's default task: the one warmed")
    parser.add_argument("--skip-cold", action="store_true", help="only the warm walk and the CLI request")
    args = parser.parse_args()
    out: dict = {"task": args.task, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    out["load_average_at_start"] = os.getloadavg()[0]
    if not args.skip_cold:
        out["cold_walk_s"] = walk_on_fresh_server(Path(tempfile.mkdtemp(prefix="fv-results-cold-")))
        print(json.dumps({"cold_walk_s": out["cold_walk_s"]}), flush=True)
    warm = Path(tempfile.mkdtemp(prefix="fv-results-warm-"))
    env = dict(os.environ, FV_STUDIO_RESULTS=str(warm), OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    out["core_warm_s"], _ = timed([sys.executable, "-m", "core", "warm", "--tasks", args.task], env)
    out["warm_walk_s"] = walk_on_fresh_server(warm)
    print(json.dumps({"warm_walk_s": out["warm_walk_s"]}), flush=True)
    seconds, stdout = timed([sys.executable, "-m", "core", "attribution", "--task", args.task], env)
    out["warmed_cli_attribution_s"] = seconds
    out["warmed_cli_from_cache"] = json.loads(stdout).get("from_cache")
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
