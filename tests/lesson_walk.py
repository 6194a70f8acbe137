"""The guided lesson walked in a browser as a student does it: open step 1, press each step's
button, wait for its result, follow the footer's link to the next step. Shared by the browser
test (tests/test_browser_lesson.py) and the lesson benchmark (bench/lesson.py)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import browser_helpers as H

# the lesson's header is a progress bar ("step n of 5") that stays on screen: while waiting on a
# lesson page, busy is what runs (a spinner, a running script, stale elements), not that bar
BUSY = ", ".join(s for s in H.BUSY.split(", ") if "stProgress" not in s)


def text_shown(page: Any, text: str) -> bool:
    return H.main(page).get_by_text(text).count() > 0


def lesson_title(page: Any, n: int) -> bool:
    h1 = H.main(page).locator("h1")
    return h1.count() > 0 and h1.first.inner_text().strip().startswith(f"{n}. ")


STEPS: dict[int, tuple[str, Callable[[Any], bool]]] = {  # step -> (its button, its result is on screen)
    1: ("Run the trace", lambda p: H.frame_with(p, "shape") is not None),
    2: ("Build the h-vector and sweep the layers", lambda p: H.frame_with(p, "Δ log p(answer)") is not None),
    3: ("Find the heads and build the function vector", lambda p: text_shown(p, "With the function vector (layer")),
    4: ("Steer", lambda p: text_shown(p, "Steered: ")),
    5: ("Build from", lambda p: text_shown(p, "With CAA (layer")),
}


def numbers(page: Any) -> list[str]:
    """What a step shows as figures: its metrics (accuracies) and its texts (prompts, generations)."""
    metrics = H.main(page).locator("[data-testid=stMetricValue]").all_inner_texts()
    return metrics + H.main(page).locator("div[style*=monospace]").all_inner_texts()


def walk(page: Any, url: str, query: str = "") -> dict[str, float]:
    """Steps 1 to 5 from ``url/lesson_1_model?query``; seconds to each step's result (H.BUSY must
    be :data:`BUSY` meanwhile). Fails on an exception or an error box on any step."""
    t0 = time.monotonic()
    seconds: dict[str, float] = {}
    page.goto(f"{url}/lesson_1_model" + (f"?{query}" if query else ""))
    H.settle(page, lambda: lesson_title(page, 1), what="lesson step 1")
    for n, (label, shown) in STEPS.items():
        if n > 1:
            H.main(page).locator("a").filter(has_text=re.compile(rf"Step {n}: ")).first.click()
            H.settle(page, lambda n=n: lesson_title(page, n), what=f"lesson step {n}")
        assert text_shown(page, f"step {n} of 5"), f"no progress 'step {n} of 5'"
        H.main(page).get_by_role("button", name=re.compile(rf"^{label}")).first.click()
        H.settle(page, lambda shown=shown: shown(page), what=f"the result of lesson step {n}")
        H.assert_clean(page, f"lesson step {n}")
        seconds[f"step_{n}"] = round(time.monotonic() - t0 - sum(seconds.values()), 1)
        print(f"[{time.monotonic() - t0:6.1f} s] lesson step {n} done", flush=True)
    seconds["total"] = round(time.monotonic() - t0, 1)
    return seconds
