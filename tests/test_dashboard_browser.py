"""End to end: `streamlit run dashboard/app.py` on 127.0.0.1 and the static export, driven by
Debian's Chromium through Playwright (never `playwright install`).

Every page is opened, checked for what it must show, and photographed into test-artifacts/
(ignored by git; $M3EVAL_ARTIFACTS moves it). Chinese text must render with a real CJK
font (Debian fonts-noto-cjk): glyphs are compared with the tofu box of an unassigned
character, no OCR needed.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from playwright.sync_api import expect, sync_playwright

from dashboard.export import export
from m3eval.leaderboard import launch, streamlit_command
from tests.dashboard_fixtures import XSS, write_leaderboard, write_run

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("M3EVAL_ARTIFACTS") or ROOT / "test-artifacts")
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ZH = "一只狗在草地上奔跑"

# draws one character on a canvas in the given font and returns its pixels (alpha channel)
GLYPH_JS = """([ch, font]) => {
  const c = document.createElement('canvas'); c.width = 64; c.height = 64;
  const g = c.getContext('2d'); g.font = '40px ' + font; g.fillText(ch, 4, 48);
  return Array.from(g.getImageData(0, 0, 64, 64).data.filter((_, i) => i % 4 === 3));
}"""


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


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return write_leaderboard(tmp_path_factory.mktemp("browser") / "results", partial_run=True)


@pytest.fixture(scope="module")
def server(results):
    yield from serve(results, results.parent)


def serve(results: Path, cwd: Path):
    """The page on `results` at a free port, for as long as the generator runs: its URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"M3EVAL_RESULTS": str(results)}
    cmd = streamlit_command(port)  # what `m3eval leaderboard` runs
    assert "--server.headless" in cmd and "--browser.gatherUsageStats" in cmd
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _page(browser, dialogs: list[str], offline: bool = False):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=offline)
    page = ctx.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return ctx, page


def _shot(page, name: str) -> Path:
    """Save a screenshot as a test artefact and check it is a page, not a blank canvas."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(600)  # let charts and images paint
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    img = Image.open(path).convert("RGB")
    assert max(ImageStat.Stat(img).stddev) > 10, f"{name}: screenshot looks blank"
    assert len(img.getcolors(maxcolors=1 << 20) or []) > 50, f"{name}: too few colours to be a page"
    return path


def _open_file(page, path: Path, requests: list[str]) -> None:
    """Open an exported file offline; any request beyond file:// is refused and noted in `requests`."""
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
               else (requests.append(route.request.url), route.abort()))
    page.goto(path.as_uri(), wait_until="load")


def _open(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector('[data-testid="stMainBlockContainer"]', timeout=30_000)


def _assert_cjk_renders(page, font: str) -> None:
    """A Chinese character's glyph is drawn (ink, not the tofu box of an unassigned code point),
    and two different characters give two different glyphs."""
    tofu = page.evaluate(GLYPH_JS, ["\u0378", font])
    glyphs = [page.evaluate(GLYPH_JS, [ch, font]) for ch in ZH[:3]]
    assert all(sum(g) > 0 for g in glyphs), "no ink for Chinese characters"
    assert all(g != tofu for g in glyphs), "Chinese characters render as tofu boxes (no CJK font)"
    assert glyphs[0] != glyphs[1] != glyphs[2]


def test_a_cjk_font_is_installed():
    out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=True).stdout
    assert "CJK" in out, "install Debian's fonts-noto-cjk (scripts/install_test_deps.sh)"


@pytest.mark.timeout(180)
def test_overview_and_task_pages_in_chromium(server, browser):
    dialogs: list[str] = []
    ctx, page = _page(browser, dialogs)
    try:
        _open(page, server)
        page.wait_for_selector('[data-testid="stDataFrame"]', timeout=30_000)
        expect(page.get_by_text("1 measured row(s) without a rank", exact=False)).to_be_visible(timeout=15_000)
        expect(page.get_by_text("malformed or partial JSON", exact=False)).to_be_visible()
        expect(page.get_by_text("Reported vs reproduced")).to_be_visible()
        _shot(page, "overview")

        # a view shared by its link: the level and a weight come from the URL
        _open(page, server + "/?level=chinese&w_chinese=3")
        page.wait_for_selector('[data-testid="stDataFrame"]', timeout=30_000)
        expect(page.get_by_role("combobox", name="Level")).to_have_value("Chinese → tasks", timeout=15_000)
        assert "w_chinese=3" in page.url

        # Task page: selecting the third row of the table opens that sample
        _open(page, server + "/task")
        page.wait_for_selector('[data-testid="stDataFrame"]', timeout=30_000)
        page.locator('[data-testid="stSelectbox"]').first.click()
        page.get_by_role("option", name="okvqa", exact=True).click()
        expect(page.get_by_text("Prediction: " + XSS, exact=True)).to_be_visible(timeout=15_000)  # row 0
        grid = page.locator('[data-testid="stDataFrame"]').first
        grid.scroll_into_view_if_needed()
        box = grid.bounding_box()
        page.mouse.click(box["x"] + 18, box["y"] + 35 * 3 + 18)  # the row-selection cell of row index 2
        view = page.locator(".st-key-sample_view")
        expect(view).to_contain_text("okvqa-2 · ", timeout=15_000)
        expect(view.locator('[data-testid="stImage"] img').first).to_be_visible()
        view.scroll_into_view_if_needed()
        _shot(page, "task")

        # Chinese predictions on the Task page render with a CJK font
        task_box = page.get_by_role("combobox", name="Task")
        task_box.click()
        task_box.fill("flickr8k_cn")
        page.keyboard.press("Enter")
        zh = page.get_by_text("Prediction: 一", exact=False).first
        expect(zh).to_be_visible(timeout=15_000)
        zh.scroll_into_view_if_needed()
        font = zh.evaluate("e => getComputedStyle(e).fontFamily")
        _assert_cjk_renders(page, font)
        _shot(page, "task_chinese")
    finally:
        ctx.close()
    assert not dialogs, f"a script from the data ran: {dialogs}"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path,name,ready", [
    ("/compare", "compare", '[data-testid="stDataFrame"]'),
    ("/charts", "charts", '[data-testid="stVegaLiteChart"]'),
    ("/run-details", "run_details", '[data-testid="stJson"]'),
    ("/multilingual", "multilingual", '[data-testid="stVegaLiteChart"]'),
    ("/papers", "papers", "text=No reference file of a paper"),  # the fixture's file is in no paper's table
])
def test_other_pages_render(server, browser, path, name, ready):
    dialogs: list[str] = []
    ctx, page = _page(browser, dialogs)
    try:
        _open(page, server + path)
        page.wait_for_selector(ready, timeout=30_000)
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        if name == "charts":
            chart = page.locator('[data-testid="stVegaLiteChart"]').first
            chart.locator("canvas, svg").first.wait_for(timeout=15_000)
            expect(page.get_by_text("these bars average different numbers of tasks", exact=False)).to_be_visible()
        _shot(page, name)
    finally:
        ctx.close()
    assert not dialogs


@pytest.mark.timeout(120)
def test_static_export_offline(tmp_path, browser):
    root = write_leaderboard(tmp_path / "results", n=8, partial_run=True)
    write_run(root, "<img src=x onerror=alert(1)>", n=6, tasks=["okvqa"], overrides={"okvqa-0": XSS})
    out = tmp_path / "site" / "index.html"
    assert export(root, out) == 0
    dialogs: list[str] = []
    requests: list[str] = []
    ctx, page = _page(browser, dialogs, offline=True)
    try:
        _open_file(page, out, requests)
        expect(page.get_by_role("heading", name="All capabilities")).to_be_visible()
        expect(page.get_by_role("heading", name="Reported vs reproduced")).to_be_visible()
        assert page.locator("table").count() >= 5 and page.locator("svg rect").count() >= 4
        expect(page.get_by_text("<img src=x onerror=alert(1)>").first).to_be_visible()  # shown as text
        assert page.locator("img").count() == 0
        expect(page.get_by_text("partial (--limit)").first).to_be_visible()
        zh = page.get_by_text("Flickr8k-CN 中文").first
        expect(zh).to_be_visible()
        _assert_cjk_renders(page, zh.evaluate("e => getComputedStyle(e).fontFamily"))
        _shot(page, "export")
    finally:
        ctx.close()
    assert not requests, f"the export fetched {requests}"
    assert not dialogs


# a home, root or temp directory of the machine that wrote the results
ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:root|home|tmp)/")
SHIPPED_REPORTED = ["Ying-VLM", "BLIP-2 (Flan-T5-XXL)", "InstructBLIP", "MiniGPT-4", "M2-Encoder-10B"]


def _column(table, i: int) -> list[str]:
    return [t.strip() for t in table.locator(f"tbody tr td:nth-child({i + 1})").all_inner_texts()]


@pytest.mark.timeout(120)
def test_export_of_the_shipped_results_opened_from_a_file(tmp_path, browser):
    """`m3eval leaderboard --export` of the committed results/, opened from file:// offline: the paper
    rows on the overview, each paper's table, no machine path anywhere, and a column sorted by a click."""
    out = tmp_path / "site" / "index.html"
    assert export(ROOT / "results", out) == 0
    dialogs: list[str] = []
    requests: list[str] = []
    ctx, page = _page(browser, dialogs, offline=True)
    try:
        _open_file(page, out, requests)
        overview = page.locator("#overview table")
        for model in SHIPPED_REPORTED:
            expect(overview.get_by_role("cell", name=f"{model} (reported)", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name="Papers")).to_be_visible()
        expect(page.get_by_role("heading", name="M3IT: held-out evaluation (ROUGE-L)")).to_be_visible()
        expect(page.locator("#languages")).to_be_attached()
        text = page.locator("body").text_content()  # folded <details> included
        assert not ABSOLUTE_PATH.findall(text), [text[max(0, m.start() - 80): m.end() + 60]
                                                 for m in ABSOLUTE_PATH.finditer(text)][:3]

        # sort the M3IT table by a column: ascending on the first click, descending on the second
        m3it = page.locator("#papers table").first
        header = m3it.locator("thead th", has_text="OK-VQA").first
        i = m3it.locator("thead th").all_inner_texts().index("OK-VQA")
        before = [float(v) for v in _column(m3it, i)]
        header.scroll_into_view_if_needed()
        header.click()
        expect(header).to_have_attribute("data-sort", "asc")
        assert [float(v) for v in _column(m3it, i)] == sorted(before)
        header.click()
        assert [float(v) for v in _column(m3it, i)] == sorted(before, reverse=True)
        models = _column(m3it, 0)
        assert models[0] == "Ying-VLM" and sorted(models) == sorted(SHIPPED_REPORTED[:4])  # rows move whole
        _shot(page, "export_shipped_papers")
    finally:
        ctx.close()
    assert not requests, f"the export fetched {requests}"
    assert not dialogs


def test_leaderboard_refuses_a_missing_folder(tmp_path, capsys):
    assert launch(tmp_path / "missing", port=_free_port()) == 2
    assert "does not exist" in capsys.readouterr().err
