"""The first page on a fresh server, in Chromium: seconds until Model & prompts is complete.

    .venv/bin/python bench/first_page.py [--launcher serve|streamlit] [--page model_prompts]

Starts a fresh server (``python -m dashboard.serve`` as ``make run`` does, or plain
``streamlit run dashboard/app.py``) on the results folder in use (``FV_STUDIO_RESULTS``; run
``make warm`` first for the warmed figure), opens the page as soon as the server answers its
health check, and prints JSON: seconds from the process start to the health check, from opening
the page to the page complete (its title and table shown, nothing busy), and in total.
``--open-after S`` opens the page S seconds after the health check (a server started before
the class arrives). ``--cli`` times a warmed ``python -m core attribution --task antonym``
instead (:func:`cli_request`, for ``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import browser_helpers as H  # noqa: E402  (the project's way to start and wait)

READY = {  # page -> what shows its result: a table with this column, or an element
    "model_prompts": "query",
    "head_attribution": "[data-testid=stPlotlyChart]",
    "function_vector": "[data-testid=stMetric]",
}


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


def measure(launcher: str, name: str, open_after: float = 0.0) -> dict:
    from playwright.sync_api import sync_playwright

    port = H.free_port()
    url = f"http://127.0.0.1:{port}"
    data = tempfile.mkdtemp(prefix="fv-bench-data-")
    target = ["-m", "dashboard.serve"] if launcher == "serve" else ["-m", "streamlit", "run", "dashboard/app.py"]
    cmd = [sys.executable, *target, "--server.address", "127.0.0.1", "--server.port", str(port)]
    cmd += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    env = dict(os.environ, FV_STUDIO_DATA=data, PYTHONUNBUFFERED="1")
    log_path = Path(data) / "server.log"
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while not healthy(url):
            if proc.poll() is not None or time.monotonic() - t0 > 120:
                raise RuntimeError(log_path.read_text()[-3000:])
            time.sleep(0.1)
        t_health = time.monotonic()
        time.sleep(open_after)  # a server started a while before the first visitor
        column = READY.get(name)
        with sync_playwright() as p:
            browser = H.launch(p)
            page = H.new_page(browser)
            t_open = time.monotonic()
            path, title = H.PAGES[name]
            page.goto(f"{url}/{path}")

            def ready() -> bool:
                if not H.has_title(page, title) or H.busy(page):
                    return False
                if column.startswith("["):
                    return page.locator(column).count() > 0
                return H.frame_with(page, column) is not None

            while not ready():
                if time.monotonic() - t_open > H.LOAD_S:
                    raise RuntimeError(f"page not complete after {H.LOAD_S} s")
                time.sleep(0.05)
            t_done = time.monotonic()
            H.assert_clean(page, title)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {
        "launcher": launcher,
        "page": name,
        "opened_after_health_s": open_after,
        "results_folder": os.environ.get("FV_STUDIO_RESULTS", "(default)"),
        "server_start_to_health_s": round(t_health - t0, 2),
        "page_open_to_complete_s": round(t_done - t_open, 2),
        "server_start_to_complete_s": round(t_done - t0, 2),
    }


def cli_request(task: str = "antonym", command: str = "attribution") -> dict:
    """Seconds of one ``python -m core <command> --task <task>`` including the process start, on
    the results folder in use (warm it first), and whether it was answered from the disk tier."""
    t0 = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "core", command, "--task", task],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds = time.monotonic() - t0
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    return {
        "command": command,
        "task": task,
        "seconds": round(seconds, 2),
        "from_cache": json.loads(run.stdout)["from_cache"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launcher", choices=["serve", "streamlit"], default="serve")
    parser.add_argument("--page", choices=sorted(READY), default="model_prompts")
    parser.add_argument("--open-after", type=float, default=0.0, help="seconds between the health check and opening")
    parser.add_argument("--cli", action="store_true", help="time a CLI attribution request instead")
    args = parser.parse_args()
    result = cli_request() if args.cli else measure(args.launcher, args.page, args.open_after)
    print(json.dumps(result, indent=2))
