"""A classroom on one server: a long generation while other students open pages and compute.

The real server (`streamlit run dashboard/app.py`, fresh FV_STUDIO_DATA) and one headless
Chromium with one Playwright context (a new Streamlit session) per student:

1. warm-up: one session opens the pages whose results will be cached (by default Model &
   prompts and Head attribution, default built-in task and settings) and builds and saves the
   activation-addition vector (Love - Hate) that Steer will use;
2. optionally, alone on the server: a cached page opened in a new tab and a switch to the
   other one, and the same generation (another decoding seed, so not cached);
3. the load: one session presses Generate on Steer (``n_tokens`` greedy tokens) and, once its
   progress bar is up, ``n_cached`` new sessions open the cached pages, then switch to the other
   one in the sidebar, and ``n_short`` new sessions open Model & prompts and then change the
   seed (a new prediction: short computations that queue for the model behind the
   generation's pieces). Attention patterns are drawn only when asked for, so none of these
   pages loads circuitsvis.

Latency is measured the way a user feels it: from the navigation (``page.goto``) or the click
until the page is complete (its title, its result drawn, any circuitsvis view rendered, and
nothing busy: no spinner, progress bar, skeleton or stale element).
A short computation's total runs from pressing Enter on the new seed until its result is
complete; its wait is the time its progress bar said "Waiting for the model". The server's part
of each is when the script run ended (Streamlit's frontend reports it on the app's root). All
times are taken in the page itself (a probe polls the DOM every 50 ms), so one Python thread
can drive every session and its polling does not blur the figures. Errors: exception boxes,
st.error boxes (seen at any moment), Playwright failures and timeouts, tracebacks in the
server's log. Memory: the server process's resident set, sampled every 0.2 s, and the kernel's
peak (VmHWM). Responsiveness: how long the server takes to answer its health check.

The browsers share the server's CPU: on a 2-core machine, drawing eight new Streamlit tabs
(the frontend, plotly, the data grid, and circuitsvis' 1.3 MB of JavaScript per pattern)
competes with the model.

`python bench/load.py [--tokens 200] [--cached 6] [--short 2] [--server-env NAME=VALUE]`
writes bench/load.json. A slow test over :func:`run` (preopened tabs, order and results, no
timing threshold) is tests/test_load.py.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "load.json"
sys.path.insert(0, str(ROOT / "tests"))
import browser_helpers as H  # noqa: E402  (tests/browser_helpers.py: server, Chromium, waiting)

TARGET_S = 1.0  # the target for a cached view while a generation runs
VECTOR = "actadd_love_hate"  # the Steering vectors page's default name for Love - Hate
QUIET_S = 2.0  # a page is complete when it has stayed complete this long (as H.settle)
# a laptop's screen: the browser tests' tall viewport (H.VIEWPORT) costs Chromium's software
# compositor several times more for each of the nine pages drawn at once
SCREEN = {"width": 1400, "height": 900}
# the server inherits these from this process; they decide how torch's threads share the CPU
THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")


@dataclasses.dataclass(frozen=True)
class LoadConfig:
    n_tokens: int = 200  # greedy tokens of the long generation (unsteered and steered rows)
    n_prompts: int = 1  # prompts generated at once (the default prompt, then variants of it)
    n_samples: int = 1  # > 1: sampling, this many samples per prompt (rows: 2 x prompts x samples)
    n_cached: int = 6  # sessions that open a page whose result is in the store
    n_short: int = 2  # sessions that compute a new prediction (seeds 1, 2, ...)
    cached_pages: tuple[str, ...] = ("model_prompts", "head_attribution")  # names in H.PAGES, taken in turn
    stagger_s: float = 0.5  # between the start of one load session and the next
    alone: bool = True  # also time the same generation with no other session (about 40 s)
    wait_for_generation: bool = True  # False: stop once the other sessions are done (a test's order check)
    # True: the other sessions open their first page before Generate and, while it runs, only switch
    # pages or compute; False (the benchmark): they open it in a new tab while it runs
    preopen: bool = False
    timeout_s: float = 600.0  # for the whole load phase
    server_env: tuple[
        tuple[str, str], ...
    ] = ()  # extra environment of the server only, e.g. (("OMP_WAIT_POLICY", "PASSIVE"),)


# ---- the probe: what a page shows, timed inside the page -----------------------------------------

_PROBE = """
(() => {
  if (window.top !== window) return;  // not in circuitsvis' iframes
  const PAGES = %(pages)s;  // url path -> [name, title]
  const BUSY = %(busy)s;
  const ERRORS = '[data-testid=stException], [data-testid=stAlertContentError]';
  const now = () => performance.timeOrigin + performance.now();  // epoch ms, as Python's time.time()
  const flat = s => (s || '').replace(/\\s+/g, ' ').trim();
  const fresh = () => ({path: null, titleAt: null, okAt: null, ok: false, busy: false, waitS: 0, nWaits: 0,
                        waitShownS: 0, waiting: false, sameResultS: 0, genFirst: null, genLast: null,
                        progress: '', errors: 0, errorTexts: [], expect: null, busyLast: null,
                        sig: '', timeline: [], want: null, runEnd: null, sawRun: false, now: now()});
  const fv = window.__fv = fresh();
  // from Python before an action: complete will mean page ``want`` (a name) showing ``expect``
  window.__fvReset = (expect, want) => { const errors = fv.errors, errorTexts = fv.errorTexts;
                                         Object.assign(fv, fresh(), {expect, want, errors, errorTexts}); };
  const drawn = f => { try { const v = f.contentDocument.querySelector('[id^=circuits-vis]');
                             return !!v && v.childElementCount > 0; } catch (e) { return false; } };
  function content(name, main) {
    const frames = [...main.querySelectorAll('[data-testid=stIFrame]')];
    const plots = [...main.querySelectorAll('.js-plotly-plot')];
    const tables = main.querySelectorAll('[data-testid=stDataFrame]').length;
    if (name === 'model_prompts') {
      const code = main.querySelector('[data-testid=stCode]');
      if (!code || (fv.expect && !flat(code.innerText).includes(flat(fv.expect)))) return false;
      return tables >= 2 && plots.length >= 2 && frames.every(drawn);  // a pattern only when asked for
    }
    if (name === 'head_attribution')
      return plots.some(el => (el.data || []).some(t => t.type === 'heatmap')) && tables >= 1
             && frames.every(drawn);
    if (name === 'task_vectors') return plots.length >= 1;
    if (name === 'steer') return main.querySelectorAll('.fv-steer-text').length >= 2;
    return true;
  }
  // the server's script runs, as Streamlit's frontend reports them (stApp's data-test-script-state):
  // runEnd is when the last run since the reset ended, the server's part of a view or computation
  new MutationObserver(changes => {
    for (const c of changes) {
      const state = c.target.getAttribute('data-test-script-state');
      if (state === 'running') fv.sawRun = true;
      else if (state === 'notRunning' && fv.sawRun) fv.runEnd = now();
    }
  }).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-test-script-state']});
  let last = now();
  setInterval(() => {
    const t = now(), dt = (t - last) / 1000;
    last = t;
    const path = location.pathname.replace(/^\\/+|\\/+$/g, '');
    if (path !== fv.path) { fv.path = path; fv.titleAt = null; fv.okAt = null; }
    const entry = PAGES[path];
    const main = document.querySelector('[data-testid=stMain]');
    const h1 = main && main.querySelector('h1');
    const titled = !!entry && !!h1 && h1.innerText.trim() === entry[1];
    if (titled && fv.titleAt === null) fv.titleAt = t;
    const busy = document.querySelectorAll(BUSY).length > 0;
    if (busy) fv.busyLast = t;
    const bars = [...document.querySelectorAll('[data-testid=stProgress]')].map(e => e.innerText || '');
    const waiting = bars.some(b => b.includes('Waiting for the model'));
    if (waiting) {
      fv.waitS += dt;
      if (!fv.waiting) fv.nWaits += 1;
      for (const b of bars) { const m = b.match(/\\((\\d+) s\\)\\.\\.\\./); if (m) fv.waitShownS = Math.max(fv.waitShownS, +m[1]); }
    }
    fv.waiting = waiting;
    if (bars.some(b => b.includes('computing this same result'))) fv.sameResultS += dt;
    const gen = bars.find(b => b.startsWith('Generating'));
    if (gen !== undefined) { if (fv.genFirst === null) fv.genFirst = t; fv.genLast = t; fv.progress = gen; }
    const errs = document.querySelectorAll(ERRORS);
    if (errs.length > fv.errors) { fv.errors = errs.length; fv.errorTexts = [...errs].map(e => (e.innerText || '').slice(0, 300)); }
    let ok = false;
    try { ok = titled && !busy && (!fv.want || entry[0] === fv.want) && content(entry[0], main); } catch (e) { ok = false; }
    // what the page is waiting for, each time it changes (for reading a slow run afterwards)
    const kinds = [...new Set([...document.querySelectorAll(BUSY)].map(e => e.getAttribute('data-stale') ? 'stale'
                   : (e.getAttribute('data-testid') || '').replace(/^st/, '') + (e.getAttribute('data-testid') === 'stProgress'
                   ? ':' + (e.innerText || '').replace(/\\(.*$/, '').slice(0, 40) : '')))].sort();
    const sig = (titled ? 'T' : '-') + (ok ? ' ok' : '') + (kinds.length ? ' ' + kinds.join(',') : '');
    if (sig !== fv.sig && fv.timeline.length < 60) fv.timeline.push([Math.round(t), sig]);
    fv.sig = sig;
    if (ok && fv.okAt === null) fv.okAt = t;
    if (!ok) fv.okAt = null;
    fv.ok = ok; fv.busy = busy; fv.now = t;
  }, 50);
})();
"""


def probe_script() -> str:
    pages = {path: [name, title] for name, (path, title) in H.PAGES.items()}
    return _PROBE % {"pages": json.dumps(pages), "busy": json.dumps(H.BUSY)}


def probed_page(browser: Any) -> Any:
    """A new context (a new Streamlit session once it navigates) whose pages carry the probe."""
    page = H.new_page(browser)
    page.set_viewport_size(SCREEN)
    page.context.add_init_script(probe_script())
    return page


def read_probe(page: Any) -> dict | None:
    """The probe's record, or None while the page is navigating."""
    try:
        return page.evaluate("() => window.__fv ? JSON.parse(JSON.stringify(window.__fv)) : null")
    except Exception:
        return None


def complete(page: Any) -> bool:
    rec = read_probe(page)
    return bool(rec and rec["ok"])


# ---- the server's memory -------------------------------------------------------------------------


def server_process(url: str) -> Any:
    """The `streamlit run` child of this process serving ``url`` (psutil.Process)."""
    import psutil

    port = url.rsplit(":", 1)[1]
    for child in psutil.Process().children(recursive=True):
        try:
            cmd = child.cmdline()
        except psutil.Error:
            continue
        if "streamlit" in cmd and port in cmd:
            return child
    raise RuntimeError(f"no streamlit process for {url}")


class HealthProbe(threading.Thread):
    """How long the server takes to answer ``/_stcore/health`` (its event loop's responsiveness:
    every page's messages and files go through that loop), every ``every`` seconds: (epoch s, s)."""

    def __init__(self, url: str, every: float = 0.5):
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.samples: list[tuple[float, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        import urllib.request

        while not self.halt.is_set():
            t = time.time()
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=120) as r:
                    r.read()
                self.samples.append((t, time.time() - t))
            except OSError:
                self.samples.append((t, float("inf")))
            self.halt.wait(self.every)

    def spread(self, t0: float = 0.0, t1: float = float("inf")) -> dict:
        got = sorted(d for t, d in self.samples if t0 <= t <= t1)
        if not got:
            return {}
        return {
            "median_s": round(statistics.median(got), 3),
            "p90_s": round(got[int(0.9 * (len(got) - 1))], 3),
            "worst_s": round(got[-1], 3),
            "n": len(got),
        }


class RssSampler(threading.Thread):
    """Resident memory of one process every ``every`` seconds: (epoch s, bytes)."""

    def __init__(self, proc: Any, every: float = 0.2):
        super().__init__(daemon=True)
        self.proc, self.every = proc, every
        self.samples: list[tuple[float, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.samples.append((time.time(), self.proc.memory_info().rss))
            except Exception:  # the server is gone
                return
            self.halt.wait(self.every)

    def peak_mb(self, t0: float = 0.0, t1: float = float("inf")) -> float:
        inside = [rss for t, rss in self.samples if t0 <= t <= t1]
        return round(max(inside) / 2**20, 1) if inside else float("nan")

    def hwm_mb(self) -> float:
        """The kernel's record of the process's peak resident set (Linux)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
        return float("nan")


# ---- page actions -------------------------------------------------------------------------------


def type_into(page: Any, field: Any, text: str, enter: bool = False) -> None:
    """Replace a one-line field's text by keyboard, as a user does."""
    field.click()
    page.keyboard.press("Control+a")
    page.keyboard.type(text, delay=5)
    if enter:
        page.keyboard.press("Enter")


def number_input(page: Any, scope: Any, label: str) -> Any:
    return scope.locator("[data-testid=stNumberInput]").filter(has=page.get_by_text(label, exact=True)).locator("input")


def build_vector(page: Any, url: str) -> None:
    """Steering vectors: build Love - Hate with the defaults and save it under its default name."""
    H.goto(
        page, url, "steering_vectors", ready=lambda: page.get_by_role("button", name="Build the vector").count() == 1
    )
    page.get_by_role("button", name="Build the vector").click()
    H.settle(page, lambda: H.frame_with(page, "positive token") is not None, what="the activation-addition vector")
    form = (
        H.main(page).locator("[data-testid=stForm]").filter(has=page.get_by_role("button", name="Save to the library"))
    )
    form.get_by_role("button", name="Save to the library").click()
    H.settle(page, lambda: any(VECTOR in t for t in H.alerts(page, "Success")), what="the 'Saved' message")
    H.assert_clean(page, "Steering vectors")


def start_generation(page: Any, url: str, n_tokens: int, seed: int, n_prompts: int = 1, n_samples: int = 1) -> float:
    """Open Steer (the only vector is chosen), set the tokens and the decoding seed (and, for
    ``n_prompts`` > 1, as many variants of the default prompt; for ``n_samples`` > 1, sampling
    with that many samples per prompt), press Generate; returns the epoch time of the click."""
    H.goto(page, url, "steer", ready=lambda: page.get_by_role("button", name="Generate").count() == 1)
    H.assert_clean(page, "Steer")
    form = H.main(page).locator("[data-testid=stForm]")
    if n_prompts > 1:
        area = form.locator("textarea")
        first = area.input_value().strip()
        area.click()
        page.keyboard.press("Control+a")
        for i in range(n_prompts):
            page.keyboard.type(first if i == 0 else f"{first} ({i + 1})")
            if i + 1 < n_prompts:
                page.keyboard.press("Enter")  # a new line: Enter does not submit a form from a text area
        assert len(area.input_value().splitlines()) == n_prompts, area.input_value()
    fields = {"Max new tokens": n_tokens, "Seed": seed}
    if n_samples > 1:
        form.locator("[data-testid=stRadio]").filter(has=page.get_by_text("Decoding", exact=True)).get_by_text(
            "sampling", exact=True
        ).click()
        fields["Samples"] = n_samples
    for label, value in fields.items():
        type_into(page, number_input(page, form, label), str(value))
    shown = {label: number_input(page, form, label).input_value() for label in fields}
    assert shown == {label: str(v) for label, v in fields.items()}, f"the Steer form shows {shown}"
    t = time.time()
    form.get_by_role("button", name="Generate").click()
    return t


def expected_prompt(seed: int) -> str:
    """The first in-context prompt Model & prompts shows for the default task with ``seed``."""
    from core.prompts import DEFAULT_TEMPLATE, PromptSettings, build_prompts, split_task
    from core.tasks import load_builtin
    from dashboard.state import DEFAULTS

    task = load_builtin(DEFAULTS["task_name"])
    settings = PromptSettings(
        n_shots=DEFAULTS["n_shots"], n_prompts=DEFAULTS["n_prompts"], seed=seed, template=DEFAULT_TEMPLATE
    )
    splits = split_task(task, seed)
    return build_prompts(splits.test, splits.train, settings).clean[0]


def read_prediction(page: Any) -> dict:
    """The prediction table and the metrics Model & prompts shows."""
    frame = H.frame_with(page, "query")
    metrics = {}
    for m in H.main(page).locator("[data-testid=stMetric]").all():
        metrics[m.locator("[data-testid=stMetricLabel]").inner_text().strip()] = (
            m.locator("[data-testid=stMetricValue]").inner_text().strip()
        )
    return {"header": H.table_header(frame), "rows": H.table_rows(frame), "metrics": metrics}


# ---- the sessions of the load phase ------------------------------------------------------------


@dataclasses.dataclass
class Session:
    """One student: a context of the shared Chromium, stepped by :func:`load_phase`'s loop."""

    name: str
    role: str  # "generate", "cached" or "short"
    page_name: str
    start_at: float = 0.0  # epoch s
    seed: int = 0  # "short": the new seed
    switch_to: str | None = None  # "cached": the page it then opens from the sidebar
    page: Any = None
    stage: str = "waiting"  # waiting, opening, opened, switching or computing, done, failed
    hold: bool = False  # stay "opened" (the first page complete) until released
    t_nav: float = 0.0  # epoch s of page.goto
    t_switch: float = 0.0  # "cached": epoch s of the click on the sidebar link
    t_change: float = 0.0  # "short": epoch s of the Enter on the new seed; "generate": of Generate
    view: dict | None = None  # probe record when the page opened by URL was complete
    switched: dict | None = None  # "cached": probe record when the page switched to was complete
    final: dict | None = None  # "short", "generate": probe record when the computation was complete
    failures: list = dataclasses.field(default_factory=list)

    def fail(self, what: str) -> None:
        self.failures.append(what)
        self.stage = "failed"
        if self.page is not None:
            H.failure_shot(self.page, f"load {self.name} {what[:30]}")


def _step(s: Session, browser: Any, url: str, expects: dict[int, str], log: Callable[[str], None]) -> None:
    """Advance one session by at most one action: open, then (unless held) switch or compute."""
    if s.stage == "waiting" and time.time() >= s.start_at:
        s.page = probed_page(browser)
        s.t_nav = time.time()
        s.page.goto(f"{url}/{H.PAGES[s.page_name][0]}", wait_until="commit")
        s.stage = "opening"
        return
    if s.stage == "opened" and not s.hold:
        _act(s, expects)
        return
    if s.stage not in ("opening", "switching", "computing"):
        return
    rec = read_probe(s.page)
    if rec is None or rec["okAt"] is None or rec["now"] - rec["okAt"] < QUIET_S * 1000:
        return
    if s.stage == "opening":
        s.view = rec
        s.stage = "opened"
        log(f"{s.name}: {H.PAGES[s.page_name][1]} complete after {rec['okAt'] / 1000 - s.t_nav:.2f} s")
        if not s.hold:
            _act(s, expects)
    elif s.stage == "switching":
        s.switched = rec
        s.stage = "done"
        log(f"{s.name}: switched to {H.PAGES[s.switch_to][1]}, complete after {rec['okAt'] / 1000 - s.t_switch:.2f} s")
    else:
        s.final = rec
        s.stage = "done"
        if s.role == "generate":
            log(f"generation complete after {rec['okAt'] / 1000 - s.t_change:.2f} s")
        else:
            log(
                f"{s.name}: seed {s.seed} complete after {rec['okAt'] / 1000 - s.t_change:.2f} s (waited {rec['waitS']:.1f} s)"
            )


def _act(s: Session, expects: dict[int, str]) -> None:
    """What a session does once its first page is complete."""
    if s.role == "cached":
        if s.switch_to is None:
            s.stage = "done"
            return
        # moving to another cached page in the open tab, as a student does
        s.page.evaluate("(w) => window.__fvReset(null, w)", s.switch_to)  # complete = the new page
        s.t_switch = time.time()
        H.nav_link(s.page, H.PAGES[s.switch_to][1]).click()
        s.stage = "switching"
        return
    # a short computation: a new seed, so a prediction not in the store
    s.page.evaluate(
        "(e) => window.__fvReset(e, 'model_prompts')", expects[s.seed]
    )  # complete = this seed's prompt shown
    type_into(s.page, number_input(s.page, H.sidebar(s.page), "Seed"), str(s.seed))
    s.t_change = time.time()
    s.page.keyboard.press("Enter")
    s.stage = "computing"


def _running(s: Session) -> bool:
    return s.stage not in ("done", "failed")


def _drive(
    sessions: list[Session],
    browser: Any,
    url: str,
    expects: dict[int, str],
    deadline: float,
    log: Callable[[str], None],
    busy: Callable[[], bool],
) -> None:
    """Step every session in turn while ``busy()``; at ``deadline`` the unfinished ones fail."""
    while busy():
        if time.time() > deadline:
            for s in sessions:
                if _running(s):
                    rec = read_probe(s.page) if s.page is not None else None
                    s.fail(
                        f"timed out at stage {s.stage} (busy: {H.describe_busy(s.page) if s.page is not None else '-'}; probe: {rec})"
                    )
            return
        for s in sessions:
            try:
                _step(s, browser, url, expects, log)
            except Exception as exc:
                s.fail(f"{type(exc).__name__}: {str(exc)[:300]}")
        time.sleep(0.1)


def cached_alone(browser: Any, url: str, cfg: LoadConfig, log: Callable[[str], None]) -> dict:
    """The baseline: one session opens a cached page and switches to another, nothing else running."""
    pages = cfg.cached_pages
    s = Session("alone", "cached", pages[0], start_at=time.time(), switch_to=pages[1] if len(pages) > 1 else None)
    _drive([s], browser, url, {}, time.time() + 300, log, lambda: _running(s))
    if s.page is not None:
        s.page.context.close()
    if s.stage != "done":
        raise AssertionError(f"a cached page alone did not complete: {s.failures}")
    return {
        "page": H.PAGES[s.page_name][1],
        "complete_s": _secs(s.view["okAt"], s.t_nav),
        "first_content_s": _secs(s.view["titleAt"], s.t_nav),
        "switched_to": H.PAGES[s.switch_to][1] if s.switch_to else None,
        "switch_complete_s": _secs(s.switched["okAt"], s.t_switch) if s.switched else None,
    }


def load_phase(browser: Any, url: str, cfg: LoadConfig, log: Callable[[str], None]) -> dict:
    expects = {seed: expected_prompt(seed) for seed in range(1, cfg.n_short + 1)}
    others = [
        Session(f"short{i + 1}", "short", "model_prompts", seed=i + 1, hold=cfg.preopen) for i in range(cfg.n_short)
    ]
    pages = cfg.cached_pages
    for i in range(cfg.n_cached):
        switch_to = pages[(i + 1) % len(pages)] if len(pages) > 1 else None
        others.append(Session(f"cached{i + 1}", "cached", pages[i % len(pages)], switch_to=switch_to, hold=cfg.preopen))
    if cfg.preopen:  # first pages complete before Generate; held there
        for i, s in enumerate(others):
            s.start_at = time.time() + i * cfg.stagger_s
        _drive(
            others,
            browser,
            url,
            expects,
            time.time() + cfg.timeout_s,
            log,
            lambda: any(s.stage in ("waiting", "opening") for s in others),
        )
        log(f"{sum(s.stage == 'opened' for s in others)} sessions open and waiting")

    gen = Session("generate", "generate", "steer", page=probed_page(browser))
    t_click = gen.t_change = start_generation(
        gen.page, url, cfg.n_tokens, seed=0, n_prompts=cfg.n_prompts, n_samples=cfg.n_samples
    )
    deadline = t_click + cfg.timeout_s
    # the generation's progress bar must be up before the others arrive
    while True:
        rec = read_probe(gen.page)
        if rec and rec["genFirst"] is not None:
            break
        if time.time() > t_click + 120:
            gen.fail("no 'Generating' progress bar within 120 s of Generate")
            raise AssertionError(gen.failures[-1])
        time.sleep(0.1)
    t_running = time.time()
    log(f"generation running ({rec['progress']}) {t_running - t_click:.1f} s after Generate")
    gen.stage = "computing"
    for i, s in enumerate(others):
        s.hold = False
        s.start_at = t_running + i * cfg.stagger_s  # (preopen: already open)

    _drive(
        [gen, *others],
        browser,
        url,
        expects,
        deadline,
        log,
        lambda: any(_running(s) for s in others) or (cfg.wait_for_generation and _running(gen)),
    )

    # what each page shows at the end: errors, and the short computations' results
    sessions, gen_rec = [], read_probe(gen.page) or gen.final or {}
    # the generation ended when its progress bar was last seen, unless it is still up
    still_generating = (
        gen.stage != "done" and gen_rec.get("genLast") is not None and gen_rec["now"] - gen_rec["genLast"] < 1000
    )
    gen_end = float("inf") if still_generating else gen_rec.get("genLast")
    for s in [gen, *others]:
        view, switched, final = s.view or {}, s.switched or {}, s.final or {}
        errors_at_end, shown = "", None
        if s.page is not None:
            errors_at_end = H.page_errors(s.page)
            if s.role == "short" and s.stage == "done":
                try:
                    shown = read_prediction(s.page)
                except Exception as exc:
                    s.failures.append(f"reading the prediction: {type(exc).__name__}: {exc}")
        seen = [r for r in (view, switched, final, gen_rec if s is gen else {}) if r]
        texts = (
            [t for r in seen for t in r.get("errorTexts", [])] + ([errors_at_end] if errors_at_end else []) + s.failures
        )
        errors = max([r.get("errors", 0) for r in seen] + [0]) + bool(errors_at_end) + len(s.failures)
        if s is gen:
            generation = {
                "tokens": cfg.n_tokens,
                "prompts": cfg.n_prompts,
                "samples": cfg.n_samples,
                "progress_visible_at_start": gen_rec.get("genFirst") is not None,
                "seconds": _secs(final.get("okAt"), t_click),  # Generate to the complete page
                "generating_until_s": None if still_generating else _secs(gen_end, t_click),
                "still_generating_at_end": still_generating,
                "waited_s": round(gen_rec.get("waitS", 0.0), 2),  # its own waits between pieces
                "timeline": [[_secs(t, t_click), sig] for t, sig in gen_rec.get("timeline", [])],
                "errors": errors,
                "error_texts": texts,
            }
            continue
        last = {"short": final, "cached": switched if s.switch_to else view}[s.role]  # the record of its last action
        done_at, server_done_at = last.get("okAt"), last.get("runEnd")
        row = {
            "session": s.name,
            "role": s.role,
            "page": H.PAGES[s.page_name][1],
            "first_content_s": _secs(view.get("titleAt"), s.t_nav),  # the page's title drawn
            "server_done_s": _secs(view.get("runEnd"), s.t_nav),  # the server's script run ended
            "busy_end_s": _secs(view.get("busyLast"), s.t_nav),  # anything busy last seen
            "complete_s": _secs(view.get("okAt"), s.t_nav),
            "view_waited_s": round(view.get("waitS", 0.0), 2),
            "switched_to": H.PAGES[s.switch_to][1] if s.switch_to else None,
            "switch_complete_s": _secs(switched.get("okAt"), s.t_switch),
            "switch_server_done_s": _secs(switched.get("runEnd"), s.t_switch),
            "switch_waited_s": round(switched.get("waitS", 0.0), 2),
            "done_at": done_at / 1000 if done_at else None,
            "done_before_generation_end": bool(done_at and gen_end and done_at < gen_end),  # drawn
            "server_done_at": server_done_at / 1000 if server_done_at else None,
            "server_done_before_generation_end": bool(server_done_at and gen_end and server_done_at < gen_end),
            "errors": errors,
            "error_texts": texts,
            # what the page showed as busy, each time it changed: [seconds after the navigation, state]
            "timeline": [[_secs(t, s.t_nav), sig] for t, sig in view.get("timeline", [])],
        }
        if s.role == "short":
            row.update(
                seed=s.seed,
                total_s=_secs(final.get("okAt"), s.t_change),
                computed_s=_secs(final.get("runEnd"), s.t_change),
                waited_s=round(final.get("waitS", 0.0), 2),
                waits=final.get("nWaits", 0),
                wait_shown_max_s=final.get("waitShownS", 0),
                shown=shown,
            )
        sessions.append(row)
    for s in [gen, *others]:
        if s.page is not None:
            s.page.context.close()
    return {"generation": generation, "sessions": sessions, "t0": t_click, "t1": time.time()}


def _secs(at_ms: float | None, t0: float) -> float | None:
    return None if at_ms is None else round(at_ms / 1000 - t0, 2)


def warm_up(browser: Any, url: str, cfg: LoadConfig, data: Path) -> None:
    """One session opens the pages whose results the load's sessions will find in the store, and
    saves the vector Steer will use."""
    page = probed_page(browser)
    # the short sessions open Model & prompts first, so it is always among the cached pages
    for name in dict.fromkeys(("model_prompts", *cfg.cached_pages)):
        H.goto(page, url, name, ready=lambda: complete(page))
        H.assert_clean(page, f"warm-up: {H.PAGES[name][1]}")
        if name == "model_prompts":  # the probe recognises a seed's prompt, as the short sessions need
            page.evaluate("(e) => window.__fvReset(e, 'model_prompts')", expected_prompt(0))
            H.settle(page, lambda: complete(page), timeout=30, what="the seed-0 prompt on Model & prompts")
    if not any((data / "vectors").rglob(f"{VECTOR}.safetensors")):
        build_vector(page, url)
    page.context.close()


def generation_alone(browser: Any, url: str, cfg: LoadConfig) -> float:
    """Seconds from Generate to the complete page, nobody else on the server (decoding seed 1:
    greedy, the same work, another cache key)."""
    page = probed_page(browser)
    t = start_generation(page, url, cfg.n_tokens, seed=1, n_prompts=cfg.n_prompts, n_samples=cfg.n_samples)
    H.settle(page, lambda: complete(page), timeout=600, what="the generation alone")
    H.assert_clean(page, "Steer (alone)")
    seconds = read_probe(page)["okAt"] / 1000 - t
    page.context.close()
    return round(seconds, 2)


# ---- the whole run -------------------------------------------------------------------------------


@contextlib.contextmanager
def _environ(extra: dict[str, str]):
    """``os.environ`` with ``extra`` inside the block, as it was after."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(cfg: LoadConfig = LoadConfig(), workdir: Path | None = None, log: Callable[[str], None] = print) -> dict:
    """Start the server, warm it up, optionally time the generation alone, then the load. Returns
    the figures (see :func:`summary`) with every session's record."""
    from playwright.sync_api import sync_playwright

    def say(msg: str) -> None:
        log(f"[{time.strftime('%H:%M:%S')}] {msg}")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        data = work / "fv_studio_data"
        data.mkdir(parents=True, exist_ok=True)
        server_log = work / "streamlit.log"
        load_before = os.getloadavg()
        t_start = time.time()
        with contextlib.ExitStack() as stack:
            with _environ(dict(cfg.server_env)):  # read when the server starts; Chromium does not get it
                url = stack.enter_context(H.streamlit_app(data, server_log))
            p = stack.enter_context(sync_playwright())
            sampler, health = RssSampler(server_process(url)), HealthProbe(url)
            sampler.start()
            health.start()
            browser = H.launch(p)
            say(f"server at {url}; warming up")
            warm_up(browser, url, cfg, data)
            t_warm = time.time()
            say(f"warm-up done in {t_warm - t_start:.1f} s")
            alone, baseline = None, None
            if cfg.alone:
                baseline = cached_alone(browser, url, cfg, say)
                alone = generation_alone(browser, url, cfg)
                say(f"{cfg.n_tokens} tokens alone: {alone:.1f} s")
            rss_before = sampler.peak_mb(time.time() - 1.0)
            t_load = time.time()
            phase = load_phase(browser, url, cfg, say)
            phase["generation"]["alone_s"] = alone
            rss = {
                "before_load_mb": rss_before,
                "peak_load_mb": sampler.peak_mb(phase["t0"], phase["t1"]),
                "peak_whole_run_mb": sampler.peak_mb(),
                "kernel_peak_mb": sampler.hwm_mb(),
            }
            health_figures = {
                "before_load": health.spread(t_warm, t_load),
                "load": health.spread(phase["t0"], phase["t1"]),
            }
            browser.close()
            sampler.halt.set()
            health.halt.set()
        # Streamlit's log colours its tracebacks: drop the escape codes before counting
        tracebacks = re.sub(r"\x1b\[[0-9;]*m", "", server_log.read_text(errors="replace")).count("Traceback")
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "config": dataclasses.asdict(cfg),
        "machine": {
            "cpus": os.cpu_count(),
            "server_env": {**{k: os.environ[k] for k in THREAD_ENV if k in os.environ}, **dict(cfg.server_env)},
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "warmup_s": round(t_warm - t_start, 1),
        "generation": phase["generation"],
        "cached_alone": baseline,
        "sessions": phase["sessions"],
        "server_tracebacks": tracebacks,
        "health_latency": health_figures,
        "rss": rss,
        "run_s": round(time.time() - t_start, 1),
    }
    result["summary"] = summary(result)
    return result


def _spread(values: list[float | None]) -> dict:
    got = [v for v in values if v is not None]
    return {
        "median": round(statistics.median(got), 2) if got else None,
        "worst": max(got) if got else None,
        "n": len(got),
        "missing": len(values) - len(got),
    }


def summary(result: dict) -> dict:
    cached = [s for s in result["sessions"] if s["role"] == "cached"]
    short = [s for s in result["sessions"] if s["role"] == "short"]
    gen = result["generation"]
    opened = _spread([s["complete_s"] for s in cached])
    switched = _spread([s["switch_complete_s"] for s in cached if s["switched_to"]])
    return {
        # True: the tabs below opened while the generation ran; False: before (LoadConfig.preopen)
        "cached_open_during_generation": not result["config"]["preopen"],
        "cached_open_s": opened,  # navigation (a new tab) to the complete page
        "cached_open_first_content_s": _spread([s["first_content_s"] for s in cached]),
        "cached_open_server_done_s": _spread([s["server_done_s"] for s in cached]),
        "cached_switch_s": switched,  # sidebar click in an open tab to the complete page
        "cached_alone": result.get("cached_alone"),
        "cached_waited_for_model_s": round(sum(s["view_waited_s"] + s["switch_waited_s"] for s in cached), 2),
        "cached_switch_server_done_s": _spread([s["switch_server_done_s"] for s in cached if s["switched_to"]]),
        "short_total_s": [s.get("total_s") for s in short],
        "short_computed_s": [s.get("computed_s") for s in short],
        "short_waited_s": [s.get("waited_s") for s in short],
        "short_waits": [s.get("waits") for s in short],
        "generation_s": gen["seconds"],
        "generation_alone_s": gen.get("alone_s"),
        "all_done_while_generating": all(s["done_before_generation_end"] for s in result["sessions"]),
        "all_server_done_while_generating": all(s["server_done_before_generation_end"] for s in result["sessions"]),
        "errors": sum(s["errors"] for s in result["sessions"]) + gen["errors"] + result["server_tracebacks"],
        "health_latency_load": result["health_latency"]["load"],
        "rss_peak_load_mb": result["rss"]["peak_load_mb"],
        "rss_kernel_peak_mb": result["rss"]["kernel_peak_mb"],
        "target_met": all(
            x["missing"] == 0 and x["worst"] is not None and x["worst"] < TARGET_S
            for x in (opened, switched)
            if x["n"] + x["missing"]
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=LoadConfig.n_tokens)
    ap.add_argument("--prompts", type=int, default=LoadConfig.n_prompts, help="prompts of the long generation")
    ap.add_argument("--cached", type=int, default=LoadConfig.n_cached)
    ap.add_argument("--short", type=int, default=LoadConfig.n_short)
    ap.add_argument("--stagger", type=float, default=LoadConfig.stagger_s)
    ap.add_argument("--no-alone", action="store_true", help="skip timing the generation alone")
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the server only (repeatable), e.g. OMP_WAIT_POLICY=PASSIVE",
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    server_env = tuple(tuple(kv.split("=", 1)) for kv in args.server_env)
    cfg = LoadConfig(
        n_tokens=args.tokens,
        n_prompts=args.prompts,
        n_cached=args.cached,
        n_short=args.short,
        stagger_s=args.stagger,
        alone=not args.no_alone,
        server_env=server_env,
    )
    result = run(cfg)
    for s in result["sessions"]:
        s.pop("shown", None)  # the tables are for the test's comparison, not the record
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
