"""Browser test of the Task report: a task typed by hand, the report run with one button, the
HTML downloaded and checked to be self-contained (the real app in headless Chromium)."""

from __future__ import annotations

import re
from pathlib import Path

import browser_helpers as H  # tests/ is on sys.path
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path(H.CHROMIUM).exists():  # `make browser` installs Debian's Chromium
    pytest.skip(f"no Chromium at {H.CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

COMPARATIVES = [
    "tall -> taller",
    "short -> shorter",
    "fast -> faster",
    "slow -> slower",
    "small -> smaller",
    "old -> older",
    "young -> younger",
    "cold -> colder",
    "warm -> warmer",
    "dark -> darker",
    "long -> longer",
    "high -> higher",
]


def test_typed_task_report_and_html_download(tmp_path):
    with H.streamlit_app(tmp_path / "data", tmp_path / "server.log") as url, sync_api.sync_playwright() as pw:
        browser = H.launch(pw)
        try:
            page = browser.new_context(viewport=H.VIEWPORT, accept_downloads=True).new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            sb = H.sidebar(page)
            sb.get_by_text("Type examples", exact=True).click(timeout=H.LOAD_S * 1000)
            H.settle(page, lambda: sb.locator("textarea").count() == 1, what="the examples text area")
            area = sb.locator("textarea")
            area.click()
            page.keyboard.press("Control+A")
            page.keyboard.press("Delete")
            for i, line in enumerate(COMPARATIVES):  # typed by hand, line by line
                if i:
                    page.keyboard.press("Enter")
                page.keyboard.type(line, delay=5)
            page.keyboard.press("Control+Enter")
            H.settle(page, lambda: H.frame_with(page, "query") is not None, what="predictions for the typed task")
            page.locator("[data-testid=stSidebarNav] a").filter(has_text="Task report").first.click()
            H.settle(page, lambda: H.has_title(page, "Task report"), what="the Task report page")
            caption = H.main(page).get_by_text(re.compile("Shots used: 10")).first
            assert caption.is_visible()
            H.main(page).get_by_role("button", name=re.compile("Run the report")).click()
            H.settle(
                page,
                lambda: H.main(page).get_by_role("button", name=re.compile("Download the report \\(HTML\\)")).count(),
                timeout=900,
                what="the report",
            )
            H.assert_clean(page, "Task report")
            text = H.main(page).inner_text()
            assert "Verdict" in text and ("in context" in text or "In-context accuracy" in text)
            assert H.main(page).locator(".js-plotly-plot").count() >= 4
            H.screenshot(page, "task_report")
            with page.expect_download() as info:
                H.main(page).get_by_role("button", name=re.compile("Download the report \\(HTML\\)")).click()
            saved = tmp_path / "report.html"
            info.value.save_as(saved)
            html = saved.read_text(encoding="utf-8")
            assert "Task report: typed" in html and "Plotly.newPlot" in html
            assert not re.search(r"<script[^>]*\ssrc=", html)
        finally:
            browser.close()
