"""Helpers for the browser tests: start the app, launch Chromium, wait for Streamlit, read pages.

Streamlit renders over a websocket, so "the page has loaded" means: the expected content is
on screen, and no spinner, progress bar, skeleton, stale element or running indicator has
been seen for a couple of seconds in a row.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "screenshots"
FAILURES = ROOT / "test-artifacts" / "failures"
README_SHOTS = ROOT / "assets" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 3000}  # tall: Streamlit's main area scrolls inside itself

# page name (screenshot file) -> (path in the URL, title shown as the page's h1)
PAGES = {
    "model_prompts": ("", "Model & prompts"),
    "task_vectors": ("task_vectors", "Task vectors"),
    "head_attribution": ("head_attribution", "Head attribution"),
    "function_vector": ("function_vector", "Function vector"),
    "steer": ("steer", "Steer"),
    "steering_vectors": ("steering_vectors", "Steering vectors"),
    "vector_library": ("vector_library", "Vector library"),
}

BUSY = (
    "[data-testid=stSpinner], [data-testid=stProgress], [data-testid=stSkeleton], "
    "[data-testid=stStatusWidgetRunningIcon], [data-testid=stStatusWidgetRunningManIcon], "
    "[data-stale=true]"
)
LOAD_S = 240.0  # a page with model work: 30-90 s on a busy 2-core machine; generous


# ---- the app -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


@contextmanager
def streamlit_app(data_dir: Path, log_path: Path, timeout: float = 120.0) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` on a free port with a fresh vector library; yields the URL."""
    port = free_port()
    env = dict(os.environ, FV_STUDIO_DATA=str(data_dir), PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "dashboard/app.py",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not _health(url):
                if proc.poll() is not None:
                    raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"streamlit did not answer on {url} within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)


def launch(playwright: Any) -> Any:
    """Debian's Chromium (never ``playwright install``)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def new_page(browser: Any) -> Any:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(60_000)
    return page


# ---- waiting ---------------------------------------------------------------------------------


def busy(page: Any) -> bool:
    return page.locator(BUSY).count() > 0


def _count(page: Any, selector: str) -> int:
    try:
        return page.locator(selector).count()
    except Exception:  # the page is navigating
        return 0


def settle(
    page: Any,
    ready: Callable[[], Any] | None = None,
    timeout: float = LOAD_S,
    quiet: float = 2.0,
    what: str = "the page",
    on_busy: Callable[[], None] | None = None,
) -> None:
    """Wait until ``ready()`` holds and then nothing has been busy for ``quiet`` seconds in a row.

    ``on_busy`` is called on each poll that sees something busy (e.g. to record a progress bar).
    An exception box on a page that has stopped running fails at once (no point waiting).
    """
    deadline = time.monotonic() + timeout
    calm_since: float | None = None
    problem = ""
    while True:
        now = time.monotonic()
        try:
            is_busy = busy(page)
            ok = (ready is None or bool(ready())) and not is_busy
        except Exception as exc:  # an element detached while Streamlit redraws: poll again
            is_busy, ok, problem = True, False, f"{type(exc).__name__}: {str(exc)[:300]}"
        if is_busy and on_busy is not None:
            on_busy()
        if not is_busy and not ok and _count(page, "[data-testid=stException]"):
            raise AssertionError(f"an exception while waiting for {what}:\n{page_errors(page)}")
        if ok:
            calm_since = calm_since if calm_since is not None else now
            if now - calm_since >= quiet:
                return
        else:
            calm_since = None
        if now > deadline:
            failure_shot(page, what)
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what} (busy: {describe_busy(page)}; last problem: {problem or 'none'})"
                f"\n{page_errors(page)}"
            )
        time.sleep(0.25)


def describe_busy(page: Any) -> str:
    try:
        return (
            ", ".join(
                page.locator(BUSY).evaluate_all(
                    "els => els.map(e => (e.getAttribute('data-testid') || e.tagName) + (e.getAttribute('data-stale') ? ' stale' : '')"
                    " + ': ' + (e.innerText || '').slice(0, 80).replace(/\\s+/g, ' '))"
                )
            )
            or "nothing"
        )
    except Exception as exc:
        return f"(could not read: {exc})"


def failure_shot(page: Any, what: str) -> None:
    """A screenshot of a page that never finished, for the failure report."""
    try:
        FAILURES.mkdir(parents=True, exist_ok=True)
        name = "".join(c if c.isalnum() else "_" for c in what)[:60]
        page.screenshot(path=str(FAILURES / f"{name}.png"), timeout=30_000)
    except Exception:
        pass


def goto(
    page: Any, url: str, name: str, ready: Callable[[], Any] | None = None, timeout: float = LOAD_S, **kw: Any
) -> None:
    """Open one of the app's pages by URL and wait until it has finished."""
    path, title = PAGES[name]
    page.goto(f"{url}/{path}")
    settle(page, lambda: has_title(page, title) and (ready is None or ready()), timeout, what=f"page '{title}'", **kw)


def nav_link(page: Any, title: str) -> Any:
    """The sidebar's link to the page titled exactly ``title`` ("Steer", not "4. Steering vectors")."""
    return page.locator("[data-testid=stSidebarNav] a").filter(has=page.get_by_text(title, exact=True)).first


def nav(page: Any, name: str, ready: Callable[[], Any] | None = None, timeout: float = LOAD_S, **kw: Any) -> None:
    """Switch pages as a user does: click the link in the sidebar (session state is kept)."""
    _, title = PAGES[name]
    nav_link(page, title).click()
    settle(page, lambda: has_title(page, title) and (ready is None or ready()), timeout, what=f"page '{title}'", **kw)


# ---- reading the page ------------------------------------------------------------------------


def has_title(page: Any, title: str) -> bool:
    h1 = page.locator("[data-testid=stMain] h1")
    return h1.count() > 0 and h1.first.inner_text().strip() == title


def main(page: Any) -> Any:
    return page.locator("[data-testid=stMain]")


def sidebar(page: Any) -> Any:
    return page.locator("[data-testid=stSidebar]")


def alerts(page: Any, kind: str) -> list[str]:
    """Texts of st.error/st.warning/st.success/st.info boxes (kind: Error, Warning, Success, Info)."""
    return page.locator(f"[data-testid=stAlertContent{kind}]").all_inner_texts()


def page_errors(page: Any) -> str:
    """Exceptions and error alerts on the page, as text ('' when there are none)."""
    try:
        parts = page.locator("[data-testid=stException]").all_inner_texts() + alerts(page, "Error")
    except Exception as exc:  # the page is gone
        return f"(could not read the page: {exc})"
    return "\n---\n".join(parts)


def assert_clean(page: Any, where: str) -> None:
    errors = page_errors(page)
    assert not errors, f"{where}: the page shows an error:\n{errors}"


# st.dataframe draws on a canvas (glide data grid); an accessible <table> mirrors the cells it
# has rendered (all rows of a short table, the visible ones of a long table).


def table_header(frame: Any) -> list[str]:
    return [h.strip() for h in frame.locator("table thead th").all_inner_texts()]


def table_rows(frame: Any) -> list[list[str]]:
    """The rendered rows, each a list of cell texts (stripped), the index column first when shown."""
    return frame.locator("table").first.evaluate(
        "t => [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.innerText.trim()))"
    )


def frame_with(page: Any, column: str) -> Any:
    """The st.dataframe in the main area whose header has ``column``, or None."""
    for frame in main(page).locator("[data-testid=stDataFrame]").all():
        if column in table_header(frame):
            return frame
    return None


def attention_frames(page: Any) -> int:
    """How many circuitsvis views (iframes) the main area shows."""
    return main(page).locator("[data-testid=stIFrame]").count()


def attention_drawn(page: Any) -> bool:
    """Whether the main area's circuitsvis view has drawn itself (its root has children)."""
    return attention_frames(page) == 1 and (
        main(page).frame_locator("[data-testid=stIFrame]").locator("[id^=circuits-vis] > *").count() > 0
    )


def plot_data(page: Any, index: int = 0) -> Any:
    """The traces and layout of the ``index``-th plotly chart on the page (as plotly holds them)."""
    return page.evaluate(
        """(i) => { const el = document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')[i];
                   if (!el || !el.data) return null;
                   return {data: el.data.map(t => ({type: t.type, x: t.x, y: t.y, z: t.z})),
                           layout: {yaxis: el.layout.yaxis && {range: el.layout.yaxis.range,
                                    tickvals: el.layout.yaxis.tickvals, ticktext: el.layout.yaxis.ticktext}}}; }""",
        index,
    )


def plotly_heatmap(page: Any) -> Any:
    """The first heatmap trace on the page, or None."""
    return page.evaluate(
        """() => { for (const el of document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')) {
                     for (const t of (el.data || [])) if (t.type === 'heatmap')
                       return {x: t.x, y: t.y, z: t.z, yrange: el._fullLayout && el._fullLayout.yaxis.range}; }
                   return null; }"""
    )


def screenshot(page: Any, name: str, readme: bool = False) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False, timeout=180_000)
    if readme and os.environ.get("FV_STUDIO_README_SHOTS") == "1":  # refresh the README's pictures
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SHOTS / f"{name}.png")
    return path
