"""End to end: `streamlit run dashboard/app.py` on 127.0.0.1, driven by Debian's Chromium.

Needs /usr/bin/chromium (apt-get install chromium) and the playwright Python package;
never `playwright install`. Loads the overview, applies a filter, opens a sample on the
Task page, checks a prediction holding HTML shows as text, and saves a screenshot.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from playwright.sync_api import expect, sync_playwright

from m3eval.leaderboard import launch, streamlit_command
from tests.dashboard_fixtures import XSS, write_leaderboard

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout} s")


@pytest.fixture()
def server(tmp_path):
    results = write_leaderboard(tmp_path / "results")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"M3EVAL_RESULTS": str(results)}
    cmd = streamlit_command(port)  # what `m3eval leaderboard` runs
    assert "--server.headless" in cmd and "--browser.gatherUsageStats" in cmd
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.timeout(120)
def test_overview_filter_and_sample_in_chromium(server, tmp_path):
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            page.goto(server, wait_until="domcontentloaded")
            page.wait_for_selector('[data-testid="stDataFrame"]', timeout=30_000)
            expect(page.get_by_text("Showing 5 tasks", exact=False)).to_be_visible(timeout=15_000)
            # the two broken results files are reported, the page still renders
            expect(page.get_by_text("malformed or partial JSON", exact=False)).to_be_visible()
            expect(page.get_by_text("m3eval.results/0", exact=False)).to_be_visible()

            # filter: category "video" leaves one task
            page.get_by_role("button", name="video", exact=True).click()
            expect(page.get_by_text("Showing 1 tasks: msrvtt_qa", exact=False)).to_be_visible(timeout=15_000)
            page.wait_for_selector('[data-testid="stDataFrame"]')

            # open the Task page from the sidebar and open the first sample of okvqa
            page.get_by_role("link", name="Task", exact=True).click()
            page.wait_for_selector('[data-testid="stSelectbox"]', timeout=30_000)
            page.locator('[data-testid="stSelectbox"]').first.click()
            page.get_by_role("option", name="okvqa", exact=True).click()
            first = page.locator('[data-testid="stExpander"]').first
            expect(first).to_contain_text("okvqa-0", timeout=15_000)
            first.locator("summary").click()
            prediction = page.get_by_text(f"Prediction: {XSS}", exact=True)
            expect(prediction).to_be_visible(timeout=15_000)
            expect(first.locator('[data-testid="stImage"] img').first).to_be_visible()
            assert first.locator("b").count() == 0, "prediction text was rendered as HTML"
            page.wait_for_timeout(500)  # let images paint before the screenshot
            shot = tmp_path / "task_page.png"
            page.screenshot(path=str(shot), full_page=False)
        finally:
            browser.close()
    assert not dialogs, f"a script from the data ran: {dialogs}"
    img = Image.open(shot).convert("RGB")
    assert img.size == (1400, 1000)
    stat = ImageStat.Stat(img)
    assert max(stat.stddev) > 10, "screenshot looks blank"
    assert len(img.getcolors(maxcolors=1 << 20) or []) > 50, "screenshot has too few colors to be a page"
    if os.environ.get("M3EVAL_SCREENSHOT"):  # to look at it by hand
        img.save(os.environ["M3EVAL_SCREENSHOT"])


def test_leaderboard_refuses_a_missing_folder(tmp_path, capsys):
    assert launch(tmp_path / "missing", port=_free_port()) == 2
    assert "does not exist" in capsys.readouterr().err
