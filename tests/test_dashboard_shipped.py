"""The page as a new user first sees it: `m3eval leaderboard --results results/` on the committed results, every
page opened in Debian's Chromium (tests/test_dashboard_browser.py has the machinery): the paper rows are on the
default view, and no text of any page holds a path of the machine that recorded the results."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect
from test_dashboard_browser import ABSOLUTE_PATH, ROOT, SHIPPED_REPORTED, _open, _page, _shot, serve
from test_dashboard_browser import browser  # noqa: F401  (the fixture)

PAGES = ["", "/task", "/compare", "/charts", "/run-details", "/multilingual", "/papers"]


@pytest.fixture(scope="module")
def shipped_server(tmp_path_factory):
    yield from serve(ROOT / "results", tmp_path_factory.mktemp("shipped"))


def _grid_text(page) -> str:
    """Every text of the page, the cells of its data grids included (they paint on a canvas; their
    accessible table holds the text)."""
    return page.locator("body").text_content() or ""


@pytest.mark.timeout(240)
def test_every_page_of_the_shipped_results_shows_the_papers_and_no_machine_path(shipped_server, browser):  # noqa: F811
    dialogs: list[str] = []
    ctx, page = _page(browser, dialogs)
    try:
        for path in PAGES:
            _open(page, shipped_server + path)
            page.wait_for_selector('[data-testid="stDataFrame"], [data-testid="stAlert"]', state="attached",
                                   timeout=30_000)
            if path in ("", "/papers"):
                for model in SHIPPED_REPORTED:  # the reported rows of the default view
                    expect(page.locator("body")).to_contain_text(model, timeout=15_000)
            page.wait_for_timeout(800)  # the grids fill their cells after the frame appears
            expect(page.locator('[data-testid="stException"]')).to_have_count(0)
            text = _grid_text(page)
            assert not ABSOLUTE_PATH.findall(text), (path, [text[max(0, m.start() - 80): m.end() + 60]
                                                            for m in ABSOLUTE_PATH.finditer(text)][:3])
            _shot(page, f"shipped{path.replace('/', '_') or '_overview'}")
    finally:
        ctx.close()
    assert not dialogs
