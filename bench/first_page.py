"""The first page on a fresh server, in Chromium: seconds until Model & prompts is complete.

    .venv/bin/python bench/first_page.py [--launcher serve|streamlit] [--page model_prompts] [--repeat N]

Starts a fresh server (``python -m dashboard.serve`` as ``make run`` does, or plain
``streamlit run dashboard/app.py``) on the results folder in use (``FV_STUDIO_RESULTS``; run
``make warm`` first for the warmed figure), with Chromium already open as a visitor's browser
is; opens the page as soon as the server answers its health check, and prints JSON: seconds
from the process start to the health check, from opening the page to the page complete (its
title and table shown, nothing busy), and from the process start to complete, with the load
average at the start and the end (the machine is often shared: a figure means little without
it). ``dashboard.serve`` loads the model before it opens its port, so its health check answers
later than plain Streamlit's: compare the launchers on the process start to complete too.

The page is watched from inside the browser (:data:`READY_JS`, polled every :data:`POLL_MS`
ms by ``wait_for_function``) rather than by several round trips from Python per check, so that
the watching takes next to nothing from the renderer it measures.

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


POLL_MS = 50

# complete: the page's h1 is the title, nothing busy (tests/browser_helpers.BUSY), and its
# result shown: a table in the main area whose header has the column, or an element
READY_JS = """([title, want, busy]) => {
  const main = document.querySelector('[data-testid=stMain]');
  const h1 = main && main.querySelector('h1');
  if (!h1 || h1.innerText.trim() !== title || document.querySelector(busy)) return false;
  if (want.startsWith('[')) return document.querySelector(want) !== null;
  return [...main.querySelectorAll('[data-testid=stDataFrame]')].some(
    (frame) => [...frame.querySelectorAll('table thead th')].some((th) => th.innerText.trim() === want));
}"""


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
    with sync_playwright() as p:
        browser = H.launch(p)  # the visitor's browser is open before the server starts
        page = H.new_page(browser)
        path, title = H.PAGES[name]
        load_start = os.getloadavg()[0]
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
            t_open = time.monotonic()
            page.goto(f"{url}/{path}")
            page.wait_for_function(READY_JS, arg=[title, READY[name], H.BUSY], polling=POLL_MS, timeout=H.LOAD_S * 1000)
            t_done = time.monotonic()
            H.assert_clean(page, title)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            browser.close()
    return {
        "launcher": launcher,
        "page": name,
        "opened_after_health_s": open_after,
        "results_folder": os.environ.get("FV_STUDIO_RESULTS", "(default)"),
        "server_start_to_health_s": round(t_health - t0, 2),
        "page_open_to_complete_s": round(t_done - t_open, 2),
        "server_start_to_complete_s": round(t_done - t0, 2),
        "load_average_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],  # at the start, at the end
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
    parser.add_argument("--repeat", type=int, default=1, help="fresh servers, one after the other")
    parser.add_argument("--cli", action="store_true", help="time a CLI attribution request instead")
    args = parser.parse_args()
    for _ in range(args.repeat):
        result = cli_request() if args.cli else measure(args.launcher, args.page, args.open_after)
        print(json.dumps(result, indent=2), flush=True)
