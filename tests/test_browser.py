"""Browser tests: the real app (`streamlit run`) driven in headless Chromium by Playwright.

One module-scoped app server with a fresh vector library (FV_STUDIO_DATA in a tmp dir), on
the real default model. The tests:

- the main flow as a user does it: type five examples, see the predictions, the h-vector
  sweep, find the heads (heatmap over all 30 layers, a progress bar while it computes), build
  and save a function vector, steer with it, reload and find it in the vector library;
- the page the main flow does not open: Steering vectors, where an activation-addition
  vector is built and saved;
- cancelling: the head patching (Streamlit's script thread) and a 200-token generation
  (nnsight's worker thread) are cancelled with the Cancel button, then the session goes on;
- two users at once (two browsers on two threads): both predict and generate while the other
  works, and both get complete results equal to the same computation done alone.

Every page opened must show no exception box and no error alert. Screenshots of each page go
to test-artifacts/screenshots/; with FV_STUDIO_README_SHOTS=1, four of them are also copied
to assets/screenshots/ (committed, shown in the README).
Streamlit's rendering is slow in a GPU-less headless browser (circuitsvis renders its
attention thumbnails in JavaScript on the CPU), hence the generous timeouts.
"""

from __future__ import annotations

import ast
import contextlib
import re
import threading
import time
from pathlib import Path

import browser_helpers as H  # tests/ is on sys.path (pytest's rootdir-relative import)
import pytest

pytestmark = pytest.mark.browser

if not Path(H.CHROMIUM).exists():  # `make browser` installs Debian's Chromium
    pytest.skip(f"no Chromium at {H.CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

TYPED = ["cat -> cats", "dog -> dogs", "box -> boxes", "car -> cars", "tree -> trees"]
FV_NAME = "fv_plurals_browser"
ACTADD_NAME = "actadd_love_hate"
SHOTS = 3  # shots per prompt for the two simultaneous users
TIMINGS: list[tuple[str, float]] = []


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_data(tmp_path_factory) -> Path:
    """FV_STUDIO_DATA of the app under test: the vector library starts empty."""
    return tmp_path_factory.mktemp("fv_studio_data")


@pytest.fixture(scope="module")
def app_url(app_data, tmp_path_factory):
    log = tmp_path_factory.mktemp("streamlit_log") / "streamlit.log"
    with H.streamlit_app(app_data, log) as url:
        yield url
    print(f"\nstreamlit log: {log}")
    for what, seconds in TIMINGS:
        print(f"  {seconds:6.1f} s  {what}")


class Clock:
    def __init__(self, test: str):
        self.test, self.t0 = test, time.monotonic()

    def lap(self, what: str) -> None:
        now = time.monotonic()
        TIMINGS.append((f"{self.test}: {what}", now - self.t0))
        print(f"[{now - self.t0:6.1f} s] {self.test}: {what}", flush=True)
        self.t0 = now


def library_files(app_data: Path) -> list[str]:
    return sorted(p.name for p in (app_data / "vectors").rglob("*.safetensors"))


# ---- page actions -----------------------------------------------------------------------------


def selectbox(page, scope, label: str):
    return scope.locator("[data-testid=stSelectbox]").filter(has=page.get_by_text(label, exact=True)).first


def selected(page, scope, label: str) -> str:
    """The text shown in the selectbox labelled ``label`` (a combobox input)."""
    return selectbox(page, scope, label).locator("input").input_value()


def choose(page, scope, label: str, option: str) -> None:
    """Open the selectbox labelled ``label`` and click the option whose text contains ``option``."""
    selectbox(page, scope, label).locator("input").click()
    page.locator("[role=option]").filter(has_text=option).first.click()


def set_slider(page, scope, label: str, value: int) -> None:
    """Move a slider with the keyboard (arrow keys on its thumb) until it shows ``value``."""
    box = scope.locator("[data-testid=stSlider]").filter(has=page.get_by_text(label, exact=True)).first
    thumb = box.locator("input[type=range]")
    now = int(thumb.input_value())
    thumb.focus()
    for _ in range(abs(now - value)):
        page.keyboard.press("ArrowLeft" if value < now else "ArrowRight")
    H.settle(
        page,
        lambda: box.locator("[data-testid=stSliderThumbValue]").inner_text().strip() == str(value),
        what=f"the slider '{label}' at {value}",
    )


def replace_text(page, field, text: str) -> None:
    """Type into a text input or text area by keyboard (select all, then type)."""
    field.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i:
            page.keyboard.press("Enter")
        page.keyboard.type(line, delay=5)


def steer_columns(page) -> tuple[str, str, str, str]:
    """(unsteered header, unsteered text, steered header, steered text) of the first result."""
    cols = H.main(page).locator("[data-testid=stColumn]").filter(has=page.locator(".fv-steer-text"))
    assert cols.count() == 2, f"expected two result columns, found {cols.count()}"
    left, right = cols.nth(0), cols.nth(1)
    return (
        left.locator("[data-testid=stMarkdownContainer]").first.inner_text().strip(),
        left.locator(".fv-steer-text").first.inner_text(),
        right.locator("[data-testid=stMarkdownContainer]").first.inner_text().strip(),
        right.locator(".fv-steer-text").first.inner_text(),
    )


def metrics(page) -> dict[str, str]:
    out = {}
    for m in H.main(page).locator("[data-testid=stMetric]").all():
        out[m.locator("[data-testid=stMetricLabel]").inner_text().strip()] = (
            m.locator("[data-testid=stMetricValue]").inner_text().strip()
        )
    return out


def flat(text: str) -> str:
    return " ".join(text.split())


# ---- the main flow ----------------------------------------------------------------------------


def test_main_flow(app_url, app_data, browser):
    clock = Clock("main flow")
    page = H.new_page(browser)

    # Model & prompts: open the app, and (like an impatient user) switch to typed examples as
    # soon as the sidebar is there, while the default task is still being computed
    page.goto(app_url)
    sb = H.sidebar(page)
    sb.get_by_text("Type examples", exact=True).click(timeout=H.LOAD_S * 1000)
    clock.lap("open the app")

    # type five examples by hand in the sidebar
    H.settle(page, lambda: sb.locator("textarea").count() == 1, what="the examples text area")
    area = sb.locator("textarea")
    replace_text(page, area, "\n".join(TYPED))
    page.keyboard.press("Control+Enter")  # Streamlit applies a text area on Ctrl+Enter (or blur)

    def typed_table():
        frame = H.frame_with(page, "query")
        return frame is not None and {r[1] for r in H.table_rows(frame)} == {"cat", "dog", "box", "car", "tree"}

    H.settle(page, typed_table, what="predictions for the typed examples")
    H.assert_clean(page, "Model & prompts (typed)")
    assert area.input_value() == "\n".join(TYPED)
    rows = {r[1]: r for r in H.table_rows(H.frame_with(page, "query"))}
    assert {q: r[2] for q, r in rows.items()} == {
        "cat": "cats",
        "dog": "dogs",
        "box": "boxes",
        "car": "cars",
        "tree": "trees",
    }
    shown = metrics(page)
    assert shown["Queries"] == "5", shown
    assert re.fullmatch(r"\d+%", shown["In-context accuracy"]), shown
    # five examples: at most four shots per prompt (the slider is capped, which is expected)
    shots = sb.locator("[data-testid=stSlider]").filter(has=page.get_by_text("Shots (examples per prompt)"))
    assert shots.locator("[data-testid=stSliderThumbValue]").inner_text().strip() == "4"
    assert "Q: " in H.main(page).locator("[data-testid=stCode]").first.inner_text()
    H.screenshot(page, "model_prompts", readme=True)
    clock.lap("type five examples, predictions")
    # the attention pattern (circuitsvis, about 1.3 MB of JavaScript) is drawn only when asked for
    assert H.attention_frames(page) == 0
    H.main(page).get_by_text("Show attention pattern", exact=True).click()
    H.settle(page, lambda: H.attention_drawn(page), what="the attention pattern")
    H.assert_clean(page, "Model & prompts (attention pattern)")
    clock.lap("show the attention pattern")

    # Task vectors (the next page in the sidebar): the h-vector layer sweep for the typed task
    H.nav(page, "task_vectors", ready=lambda: H.main(page).locator(".js-plotly-plot").count() == 1)
    H.assert_clean(page, "Task vectors")
    shown = metrics(page)
    assert {"Zero-shot", "In-context"} <= set(shown) and any(
        k.startswith("Zero-shot + h (best: layer") for k in shown
    ), shown
    curve = H.plot_data(page)
    assert curve and len(curve["data"][0]["x"]) == 30, "one point per layer"
    assert "h-vector layer sweep: typed" in H.main(page).locator(".js-plotly-plot").inner_text()
    H.screenshot(page, "task_vectors")
    clock.lap("task vectors")

    # Head attribution: the heatmap, with a progress bar while all 270 heads are patched
    progress_seen = []

    def watch_progress() -> None:
        if page.locator("[data-testid=stProgress]").count():
            progress_seen.append(page.locator("[data-testid=stProgress]").first.inner_text())

    H.nav(page, "head_attribution", ready=lambda: H.plotly_heatmap(page) is not None, on_busy=watch_progress)
    H.assert_clean(page, "Head attribution")
    assert progress_seen, "no progress bar was seen while the heads were patched"
    heat = H.plotly_heatmap(page)
    assert list(heat["y"]) == list(range(30)), "the heatmap's y-axis should be the model's 30 layers"
    assert list(heat["x"]) == list(range(9)) and len(heat["z"]) == 30 and all(len(r) == 9 for r in heat["z"])
    lo, hi = sorted(heat["yrange"])
    assert lo <= 0 and hi >= 29, heat["yrange"]
    assert "Causal indirect effect" in H.main(page).locator(".js-plotly-plot").first.inner_text()
    selected_line = H.main(page).get_by_text(re.compile(r"^Selected:")).first.inner_text()
    heads_selected = re.findall(r"\d+\.\d+", selected_line)
    assert len(heads_selected) == 10, selected_line  # top-k, k = 10 by default
    assert H.frame_with(page, "effect") is not None
    H.screenshot(page, "head_attribution", readme=True)
    clock.lap("head attribution")

    # Function vector: metrics, then save it under a typed name
    H.nav(
        page,
        "function_vector",
        ready=lambda: len(metrics(page)) == 5 and page.get_by_role("button", name="Save to the library").count() == 1,
    )
    H.assert_clean(page, "Function vector")
    heads_line = H.main(page).get_by_text(re.compile(r"^Heads:")).first.inner_text()
    assert re.findall(r"\d+\.\d+", heads_line) == heads_selected, (
        "the function vector should use the heads selected on Head attribution"
    )
    shown = metrics(page)
    assert {"In-context", "Zero-shot", "Shuffled", "Shuffled + FV"} <= set(shown), shown
    fv_label = next(k for k in shown if k.startswith("Zero-shot + FV (layer "))
    fv_layer = int(re.search(r"layer (\d+)", fv_label).group(1))
    assert all(re.fullmatch(r"\d+%", v) for v in shown.values()), shown
    assert H.frame_with(page, "with vector") is not None  # the zero-shot examples table
    form = (
        H.main(page).locator("[data-testid=stForm]").filter(has=page.get_by_role("button", name="Save to the library"))
    )
    replace_text(page, form.locator("input[type=text]"), FV_NAME)
    form.get_by_role("button", name="Save to the library").click()
    H.settle(page, lambda: any(FV_NAME in t for t in H.alerts(page, "Success")), what="the 'Saved' message")
    H.assert_clean(page, "Function vector (saved)")
    saved = next(t for t in H.alerts(page, "Success") if FV_NAME in t)
    assert saved.startswith(f"Saved '{FV_NAME}' (layer {fv_layer})"), saved
    assert f"{FV_NAME}.safetensors" in library_files(app_data)
    H.screenshot(page, "function_vector")
    clock.lap("function vector, save")

    # Steer: pick the vector, generate; both columns show a continuation
    H.nav(page, "steer", ready=lambda: page.get_by_role("button", name="Generate").count() == 1)
    H.assert_clean(page, "Steer")
    choose(page, H.main(page), "Vector", FV_NAME)
    H.settle(page, lambda: selected(page, H.main(page), "Vector").startswith(FV_NAME))
    assert "(function_vector, layer " in selected(page, H.main(page), "Vector")
    prompt = H.main(page).locator("[data-testid=stForm] textarea").input_value()
    H.main(page).get_by_role("button", name="Generate").click()
    H.settle(page, lambda: page.locator(".fv-steer-text").count() == 2, what="the two generations")
    H.assert_clean(page, "Steer (generated)")
    u_head, u_text, s_head, s_text = steer_columns(page)
    assert u_head == "Unsteered" and s_head.startswith("Steered (layer "), (u_head, s_head)
    for text in (u_text, s_text):
        assert flat(text).startswith(flat(prompt)), text
        assert len(flat(text)) > len(flat(prompt)) + 3, f"no continuation after the prompt: {text!r}"
    kl = H.main(page).get_by_text(re.compile(r"^First generated token: KL\(steered ‖ unsteered\) = \d+\.\d{4} nats$"))
    assert kl.count() == 1, "the next-token change (KL) line is missing"
    H.screenshot(page, "steer", readme=True)
    clock.lap("steer")

    # reload (a new session), then the Vector library lists the saved vector from disk
    page.reload()
    H.settle(page, lambda: H.has_title(page, "Steer"), what="the reloaded page")
    H.nav(page, "vector_library", ready=lambda: H.frame_with(page, "name") is not None)
    H.assert_clean(page, "Vector library")
    rows = H.table_rows(H.frame_with(page, "name"))
    header = H.table_header(H.frame_with(page, "name"))
    by_name = {r[header.index("name")]: r for r in rows}
    assert FV_NAME in by_name, rows
    assert by_name[FV_NAME][header.index("method")] == "function_vector"
    assert by_name[FV_NAME][header.index("layer")] == str(fv_layer)
    assert by_name[FV_NAME][header.index("stored")] == "library"
    H.screenshot(page, "vector_library")
    clock.lap("reload, vector library")
    page.context.close()


# ---- the pages the main flow does not open ----------------------------------------------------


def build_actadd(page, app_url: str, app_data: Path) -> None:
    """Steering vectors: build the default Love - Hate activation-addition vector and save it."""
    H.goto(
        page,
        app_url,
        "steering_vectors",
        ready=lambda: page.get_by_role("button", name="Build the vector").count() == 1,
    )
    H.assert_clean(page, "Steering vectors")
    page.get_by_role("button", name="Build the vector").click()
    H.settle(page, lambda: H.frame_with(page, "positive token") is not None, what="the activation-addition vector")
    H.assert_clean(page, "Steering vectors (built)")
    rows = H.table_rows(H.frame_with(page, "positive token"))  # [position, repr(positive), repr(negative), norm]
    assert "".join(ast.literal_eval(r[1]) for r in rows).strip() == "Love", rows
    assert "".join(ast.literal_eval(r[2]) for r in rows).strip() == "Hate", rows
    form = (
        H.main(page).locator("[data-testid=stForm]").filter(has=page.get_by_role("button", name="Save to the library"))
    )
    assert form.locator("input[type=text]").input_value() == ACTADD_NAME
    form.get_by_role("button", name="Save to the library").click()
    H.settle(page, lambda: any(ACTADD_NAME in t for t in H.alerts(page, "Success")), what="the 'Saved' message")
    H.assert_clean(page, "Steering vectors (saved)")
    assert f"{ACTADD_NAME}.safetensors" in library_files(app_data)


def ensure_actadd(browser, app_url: str, app_data: Path) -> bool:
    """Build the activation-addition vector unless an earlier test saved it (a test run alone)."""
    if f"{ACTADD_NAME}.safetensors" in library_files(app_data):
        return False
    page = H.new_page(browser)
    build_actadd(page, app_url, app_data)
    page.context.close()
    return True


def test_steering_vectors_page(app_url, app_data, browser):
    clock = Clock("steering vectors")
    page = H.new_page(browser)
    build_actadd(page, app_url, app_data)
    H.screenshot(page, "steering_vectors")
    clock.lap("build and save an activation-addition vector")
    page.context.close()


# ---- cancel -----------------------------------------------------------------------------------


def click_cancel_during(page, label: str) -> None:
    """Wait until the progress bar of ``label`` shows its Cancel button, then click it."""

    def cancellable() -> bool:
        bars = page.locator("[data-testid=stProgress]")
        return (
            bars.count() > 0
            and label in bars.first.inner_text()
            and page.get_by_role("button", name="Cancel").count() == 1
        )

    deadline = time.monotonic() + H.LOAD_S
    while True:  # not H.settle: that waits for the page to stop being busy
        try:
            if cancellable():
                page.get_by_role("button", name="Cancel").click(timeout=5_000)
                return
        except Exception:  # redrawn between the check and the click: look again
            pass
        if time.monotonic() > deadline:
            H.failure_shot(page, f"cancel {label}")
            raise AssertionError(f"no Cancel button during '{label}' within {H.LOAD_S:.0f} s")
        time.sleep(0.2)


def test_cancel_and_go_on(app_url, app_data, browser):
    """Cancel the head patching (script thread) and a long generation (nnsight's worker thread)."""
    clock = Clock("cancel")
    ensure_actadd(browser, app_url, app_data)
    page = H.new_page(browser)
    # a new session: the default task's heads have not been patched yet (Cancel shows at the first pass)
    page.goto(f"{app_url}/head_attribution")
    click_cancel_during(page, "Patching all 270 heads")
    cancelled = "Cancelled: Patching all 270 heads. Nothing from it was kept."
    H.settle(page, lambda: cancelled in H.alerts(page, "Warning"), what="the 'Cancelled' message")
    H.assert_clean(page, "Head attribution (cancelled)")
    assert H.plotly_heatmap(page) is None, "a heatmap after cancelling"
    assert page.locator("[data-testid=stProgress]").count() == 0
    clock.lap("cancel the head patching")

    # the session goes on: run it again and get the whole heatmap
    page.get_by_role("button", name="Run it again").click()
    H.settle(page, lambda: H.plotly_heatmap(page) is not None, what="the heatmap after 'Run it again'")
    H.assert_clean(page, "Head attribution (run again)")
    heat = H.plotly_heatmap(page)
    assert len(heat["z"]) == 30 and all(len(r) == 9 for r in heat["z"])
    assert not any(cancelled in t for t in H.alerts(page, "Warning"))
    clock.lap("run it again")

    # a 200-token generation, cancelled while nnsight generates on its worker thread
    H.nav(page, "steer", ready=lambda: page.get_by_role("button", name="Generate").count() == 1)
    choose(page, H.main(page), "Vector", ACTADD_NAME)
    H.settle(page, lambda: selected(page, H.main(page), "Vector").startswith(ACTADD_NAME))
    form = H.main(page).locator("[data-testid=stForm]")
    max_new = (
        form.locator("[data-testid=stNumberInput]")
        .filter(has=page.get_by_text("Max new tokens", exact=True))
        .locator("input")
    )
    replace_text(page, max_new, "200")
    t0 = time.monotonic()
    form.get_by_role("button", name="Generate").click()
    click_cancel_during(page, "Generating")
    H.settle(
        page,
        lambda: "Cancelled: Generating. Nothing from it was kept." in H.alerts(page, "Warning"),
        what="the 'Cancelled' message",
    )
    print(f"  generation cancelled {time.monotonic() - t0:.1f} s after Generate")
    H.assert_clean(page, "Steer (cancelled)")
    assert page.locator(".fv-steer-text").count() == 0, "generations shown after cancelling"
    H.screenshot(page, "cancelled", readme=True)
    clock.lap("cancel a generation")
    page.context.close()


# ---- two users at once ------------------------------------------------------------------------


def _user(app_url: str, task: str, prompt: str, barrier: threading.Barrier, out: dict) -> None:
    """One user in their own browser (own Playwright instance: sync objects stay on this thread)."""
    try:
        with sync_api.sync_playwright() as p:
            b = H.launch(p)
            page = H.new_page(b)
            # pick the task on a light page, then open Model & prompts together with the other user
            H.goto(page, app_url, "steer", ready=lambda: page.get_by_role("button", name="Generate").count() == 1)
            H.assert_clean(page, f"{task}: Steer")
            choose(page, H.sidebar(page), "Task", task)
            H.settle(page, lambda: selected(page, H.sidebar(page), "Task") == task)
            set_slider(page, H.sidebar(page), "Shots (examples per prompt)", SHOTS)  # short prompts: quicker
            waited: set[str] = set()  # where the app said "Waiting for the model" (the other user held it)

            def note_wait(step: str):
                def check() -> None:
                    # the progress bar of a computation queued behind the other user's says so
                    if any(
                        "Waiting for the model" in t for t in page.locator("[data-testid=stProgress]").all_inner_texts()
                    ):
                        waited.add(step)

                return check

            barrier.wait(timeout=300)
            start = time.monotonic()
            H.nav(
                page,
                "model_prompts",
                ready=lambda: H.frame_with(page, "query") is not None,
                on_busy=note_wait("predict"),
            )
            out["predict_span"] = (start, time.monotonic())
            H.assert_clean(page, f"{task}: Model & prompts")
            frame = H.frame_with(page, "query")
            out["header"] = H.table_header(frame)
            out["rows"] = H.table_rows(frame)
            out["metrics"] = metrics(page)

            # generate on Steer with the activation-addition vector, at the same time as the other user
            H.nav(page, "steer", ready=lambda: page.get_by_role("button", name="Generate").count() == 1)
            choose(page, H.main(page), "Vector", ACTADD_NAME)
            H.settle(page, lambda: selected(page, H.main(page), "Vector").startswith(ACTADD_NAME))
            form = H.main(page).locator("[data-testid=stForm]")
            replace_text(page, form.locator("textarea"), prompt)
            max_new = (
                form.locator("[data-testid=stNumberInput]")
                .filter(has=page.get_by_text("Max new tokens", exact=True))
                .locator("input")
            )
            replace_text(page, max_new, "12")
            out["settings"] = {
                "layer": selected(page, form, "Layer"),
                "coeff": form.locator("[data-testid=stNumberInput]")
                .filter(has=page.get_by_text("Coefficient", exact=True))
                .locator("input")
                .input_value(),
            }
            barrier.wait(timeout=300)
            start = time.monotonic()
            form.get_by_role("button", name="Generate").click()
            H.settle(
                page,
                lambda: page.locator(".fv-steer-text").count() == 2,
                what=f"{task}: the two generations",
                on_busy=note_wait("generate"),
            )
            out["generate_span"] = (start, time.monotonic())
            out["waited"] = sorted(waited)
            H.assert_clean(page, f"{task}: Steer (generated)")
            out["steer"] = steer_columns(page)
            H.screenshot(page, f"concurrent_{task}")
            b.close()
    except BaseException as exc:  # reported by the main thread
        out["error"] = exc
        with contextlib.suppress(Exception):
            barrier.abort()


def test_two_users_at_once(app_url, app_data, browser):
    clock = Clock("two users")
    if ensure_actadd(browser, app_url, app_data):
        clock.lap("build the activation-addition vector")

    users = {"country_capital": "I hate you because", "present_past": "I think that you are"}
    barrier = threading.Barrier(len(users))
    outs: dict[str, dict] = {task: {} for task in users}
    threads = [
        threading.Thread(target=_user, args=(app_url, task, prompt, barrier, outs[task]), daemon=True)
        for task, prompt in users.items()
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a user's browser did not finish in 10 minutes"
    for task, out in outs.items():
        if "error" in out:
            raise AssertionError(f"user with task {task} failed: {out['error']!r}") from out["error"]
    clock.lap("predict and generate at the same time")
    for what in ("predict_span", "generate_span"):  # the two users' requests ran at the same time
        (a0, a1), (b0, b1) = (out[what] for out in outs.values())
        assert max(a0, b0) < min(a1, b1), f"{what}: the two users did not overlap"
    print("  'Waiting for the model' seen by:", {task: out["waited"] for task, out in outs.items()})

    # the same computations done alone, in this process, must give what each user was shown
    from core.library import Library
    from core.models import ModelSpec, load_model
    from core.predict import predict
    from core.prompts import DEFAULT_TEMPLATE, PromptSettings
    from core.steer import generate_pair
    from core.tasks import load_builtin

    lm = load_model(ModelSpec())
    settings = PromptSettings(n_shots=SHOTS, n_prompts=20, seed=0, template=DEFAULT_TEMPLATE)
    vec = Library(app_data / "vectors").load(lm.model_id, ACTADD_NAME)
    for task, prompt in users.items():
        out = outs[task]
        expected = predict(lm, load_builtin(task), settings).table()
        header, rows = out["header"], out["rows"]
        assert rows, f"{task}: an empty prediction table"
        for row in rows:  # the rows the grid rendered (all of them when it shows them all)
            i = int(row[0])
            assert row[header.index("query")] == expected[i]["query"], (task, row, expected[i])
            assert row[header.index("prediction")] == expected[i]["prediction"].strip(), (task, row, expected[i])
        accuracy = sum(r["correct"] for r in expected) / len(expected)
        assert out["metrics"]["In-context accuracy"] == f"{accuracy:.0%}", (task, out["metrics"])
        assert out["metrics"]["Queries"] == str(len(expected))

        assert out["settings"]["layer"].strip() == str(vec.layer), out["settings"]
        coeff = float(out["settings"]["coeff"])
        [pair] = generate_pair(lm, [prompt], vec.values, vec.layer, coeff, "prompt", 12)
        u_head, u_text, s_head, s_text = out["steer"]
        assert u_head == "Unsteered" and s_head == f"Steered (layer {vec.layer}, coefficient {coeff:g})", (
            u_head,
            s_head,
        )
        assert flat(u_text) == flat(prompt + pair.unsteered[0]), (task, u_text, pair.unsteered[0])
        assert flat(s_text) == flat(prompt + pair.steered[0]), (task, s_text, pair.steered[0])
        assert pair.unsteered[0] != pair.steered[0], "the vector should change the continuation"
    clock.lap("the same computations alone")
