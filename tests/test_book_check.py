"""`book check` can fail: pages opened from disk in headless Chromium, as a reader opens the book.

The widget pages mimic how html-manager renders the book's ipywidgets (a script loaded from the
page's folder fills a ``.widget-subarea`` before each widget-view script); with
``crossorigin="anonymous"`` on that script Chromium blocks it from ``file://`` (the CORS bug the
book once shipped), and the check must say so.
"""
import base64
import os
import shutil

import pytest

from handlib.book import check as book_check

# A 1x1 transparent PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")
VIEW = f'<script type="{book_check.WIDGET_MIME}">{{"model_id": "m0"}}</script>'
RENDER_WIDGETS_JS = """
for (const s of document.querySelectorAll('script[type="%s"]')) {
  const area = document.createElement('div');
  area.className = 'widget-subarea';
  area.innerHTML = '<div class="jupyter-widgets widget-box">widget</div>';
  s.parentElement.insertBefore(area, s);
}
""" % book_check.WIDGET_MIME


@pytest.fixture(scope="module")
def driver():
    """One headless Chromium for the module; skipped without chromium/chromedriver, except under
    CI (env var CI set), which installs them: there their absence is a failure."""
    missing = [name for name, found in (
        ("chromium", shutil.which("chromium") or shutil.which("chromium-browser")),
        ("chromedriver", shutil.which("chromedriver"))) if not found]
    if missing:
        reason = (f"{' and '.join(missing)} not installed "
                  "(Debian: apt-get install chromium chromium-driver)")
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    with book_check._driver() as chromium:
        yield chromium


def _page(folder, name, body):
    (folder / "ok.png").write_bytes(PNG)
    (folder / "widgets.js").write_text(RENDER_WIDGETS_JS)
    page = folder / name
    page.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{body}</body></html>")
    return page


def test_passing_page_reports_nothing(driver, tmp_path):
    page = _page(tmp_path, "ok.html", f'<img src="ok.png">{VIEW}<script src="widgets.js"></script>')
    assert book_check.check_page(driver, page, expected_widgets=1, timeout=5) == []


def test_crossorigin_script_from_file_is_reported(driver, tmp_path):
    page = _page(tmp_path, "cors.html",
                 f'{VIEW}<script src="widgets.js" crossorigin="anonymous"></script>')
    problems = book_check.check_page(driver, page, expected_widgets=1, timeout=2, label="cors")
    assert "cors: 0 of 1 ipywidgets outputs rendered" in problems
    assert any("CORS" in p and "widgets.js" in p for p in problems), problems


def test_missing_image_is_reported(driver, tmp_path):
    page = _page(tmp_path, "img.html", '<img src="ok.png"><img src="missing.png">')
    problems = book_check.check_page(driver, page, timeout=2, label="img")
    assert "img: image not loaded: missing.png" in problems


def test_missing_plotly_figure_and_js_error_are_reported(driver, tmp_path):
    page = _page(tmp_path, "plotly.html", "<script>throw new Error('boom')</script>")
    problems = book_check.check_page(driver, page, expected_plotly=1, timeout=1, label="plotly")
    assert "plotly: 0 of 1 plotly figures rendered" in problems
    assert any(p.startswith("plotly: console SEVERE") and "boom" in p for p in problems), problems
