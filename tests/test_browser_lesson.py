"""Browser test: the guided lesson walked end to end in Chromium, then a shared link.

A student opens the lesson through a link that sets few prompts (``?prompts=5&shots=5``: the
walk stays short), presses each step's button and sees its result, following the footer's
"Step n" links (tests/lesson_walk.py). Then the Copy link of step 3 (function vectors) is
opened in a second browser context, a new session: it must show the same numbers, which the
server's result store answers without computing them again.
"""

from __future__ import annotations

import time
from pathlib import Path

import browser_helpers as H  # tests/ is on sys.path (pytest's rootdir-relative import)
import lesson_walk as L
import pytest

pytestmark = pytest.mark.browser

if not Path(H.CHROMIUM).exists():  # `make browser` installs Debian's Chromium
    pytest.skip(f"no Chromium at {H.CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

LINK = "prompts=5&shots=5"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    log = tmp_path_factory.mktemp("streamlit_log") / "streamlit.log"
    with H.streamlit_app(tmp_path_factory.mktemp("fv_studio_data"), log) as url:
        yield url
    print(f"\nstreamlit log: {log}")


def test_lesson_walk_and_shared_link(app_url, browser, monkeypatch):
    monkeypatch.setattr(H, "BUSY", L.BUSY)
    page = H.new_page(browser)
    t0 = time.monotonic()
    L.walk(page, app_url, LINK)
    # step 3 again (its result stays on screen), its link, and that link in a second browser context
    H.sidebar(page).locator("[data-testid=stSidebarNav] a").filter(has_text="3. ").first.click()
    H.settle(page, lambda: L.lesson_title(page, 3) and L.STEPS[3][1](page), what="lesson step 3 again")
    before = L.numbers(page)
    assert "run=1" in page.url and "prompts=5" in page.url, page.url  # the address bar has them too
    assert len(before) >= 6, before  # five accuracies, the two prompts and the two generations
    H.sidebar(page).get_by_text("Copy link").click()
    link = H.sidebar(page).locator("[data-testid=stCode]").first.inner_text().strip()
    assert link.startswith(f"{app_url}/lesson_3_fv?") and "run=1" in link and "prompts=5" in link, link
    other = H.new_page(browser)  # a new context: its own cookies, a new session
    other.goto(link)
    H.settle(other, lambda: L.lesson_title(other, 3) and L.STEPS[3][1](other), what="the shared link")
    H.assert_clean(other, "the shared link")
    assert not H.alerts(other, "Warning"), H.alerts(other, "Warning")
    assert L.numbers(other) == before
    print(f"[{time.monotonic() - t0:6.1f} s] the shared link shows the same numbers", flush=True)
