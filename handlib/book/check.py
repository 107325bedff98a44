"""``python -m handlib book check``: open the built pages from disk (``file://``) in headless
Chromium, exactly as a reader's browser would (no file-access flags), and fail on what a reader
would miss.

A page fails when it renders fewer ipywidgets views or plotly figures than its notebook has such
outputs, when an ``<img>`` did not load, or when the console logs an error (level SEVERE) or any
message mentioning CORS or a blocked request. Needs Debian's ``chromium`` and ``chromium-driver``
and the ``selenium`` package (all installed by ``.ci/run``).
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from handlib.book.chapters import toc_files
from handlib.paths import REPO_ROOT

# Only what a headless CI container needs; nothing that loosens file:// security (a reader's
# Chromium has no --allow-file-access-from-files, so the check must not either).
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,900")
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
CONSOLE_KEYWORDS = ("cors", "blocked")

# What is rendered on the page now. html-manager (embed-amd.js) renders each widget output, a
# <script type=WIDGET_MIME>, into a <div class="widget-subarea"> it inserts just before that
# script; a view that rendered holds a .jupyter-widgets element, a failed one an error widget.
# A plotly figure is a .js-plotly-plot that holds a drawn .main-svg (one figure has several).
_PAGE_STATE_JS = """
const views = [...document.querySelectorAll('script[type="%s"]')].map(s => s.previousElementSibling)
  .filter(a => a && a.classList.contains('widget-subarea') && a.querySelector('.jupyter-widgets'));
const errors = views.filter(a => a.querySelector('.jupyter-widgets-error-widget')).length;
return {
  ready: document.readyState === 'complete',
  widgets: views.length - errors,
  widget_errors: errors,
  plotly: [...document.querySelectorAll('.js-plotly-plot')]
    .filter(p => p.querySelector('.main-svg')).length,
  broken_images: [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
    .map(i => i.getAttribute('src') || i.currentSrc),
};
""" % WIDGET_MIME


def notebook_output_counts(notebook: Path) -> Counter:
    """How many stored outputs of a notebook carry each mime type."""
    counts = Counter()
    for cell in json.loads(notebook.read_text()).get("cells", []):
        for output in cell.get("outputs", []):
            counts.update(set(output.get("data", {})))
    return counts


@contextmanager
def _driver():
    """A headless Chromium (selenium) that keeps every console message; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        raise FileNotFoundError("headless check needs chromium and chromedriver "
                                "(Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.binary_location = binary
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def check_page(driver, page: Path, expected_widgets: int = 0, expected_plotly: int = 0,
               timeout: float = 20.0, label: str | None = None) -> list[str]:
    """Open ``page`` from disk and return its problems (empty list: all good).

    Waits up to ``timeout`` seconds for the page to load, for ``expected_widgets`` widget views and
    ``expected_plotly`` plotly figures to render and for every image to finish loading."""
    label = label or page.name
    driver.get_log("browser")  # drop what the previous page logged after its check
    driver.get(page.resolve().as_uri())
    deadline = time.monotonic() + timeout
    while True:
        state = driver.execute_script(_PAGE_STATE_JS)
        done = (state["ready"] and state["widgets"] + state["widget_errors"] >= expected_widgets
                and state["plotly"] >= expected_plotly and not state["broken_images"])
        if done or time.monotonic() >= deadline:
            break
        time.sleep(0.2)

    problems = []
    if not state["ready"]:
        problems.append(f"{label}: page did not finish loading in {timeout:g} s")
    if state["widgets"] < expected_widgets:
        problems.append(f"{label}: {state['widgets']} of {expected_widgets} ipywidgets outputs "
                        "rendered")
    if state["widget_errors"]:
        problems.append(f"{label}: {state['widget_errors']} ipywidgets outputs rendered as an "
                        "error widget")
    if state["plotly"] < expected_plotly:
        problems.append(f"{label}: {state['plotly']} of {expected_plotly} plotly figures rendered")
    for src in state["broken_images"]:
        problems.append(f"{label}: image not loaded: {src}")
    for record in driver.get_log("browser"):
        message = record.get("message", "")
        if record.get("level") == "SEVERE" or any(k in message.lower() for k in CONSOLE_KEYWORDS):
            problems.append(f"{label}: console {record.get('level')}: {message}")
    return problems


def check_pages(html_dir: Path, timeout: float = 20.0) -> list[str]:
    """Problems found on the intro page and every chapter page (empty list: all good)."""
    problems = []
    with _driver() as driver:
        for entry in toc_files():
            page = html_dir / f"{entry}.html"
            if not page.exists():
                problems.append(f"{entry}: no built page {page}")
                continue
            notebook = REPO_ROOT / f"{entry}.ipynb"
            counts = notebook_output_counts(notebook) if notebook.exists() else Counter()
            problems += check_page(driver, page, counts[WIDGET_MIME], counts[PLOTLY_MIME],
                                   timeout=timeout, label=entry)
    return problems


def _cmd_check(args) -> int:
    html_dir = Path(args.html_dir)
    if not (html_dir / "index.html").exists():
        print(f"error: {html_dir}/index.html not found; run `python -m handlib book build` first",
              file=sys.stderr)
        return 2
    problems = check_pages(html_dir)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    pages = len(toc_files())
    print(f"checked {pages} pages in headless Chromium: {len(problems)} problems")
    return 1 if problems else 0


def add_check_command(book_sub) -> None:
    check = book_sub.add_parser(
        "check", help="open the built pages in headless Chromium and fail on errors",
        description="Open the intro and every chapter page of the built book from disk in "
                    "headless Chromium, as a reader would; fail when fewer ipywidgets or plotly "
                    "figures render than the chapter's notebook holds, an image does not load, or "
                    "the console logs an error or a CORS/blocked message.")
    check.add_argument("--html-dir", default=str(REPO_ROOT / "_build" / "html"),
                       help="built book (default: _build/html)")
    check.set_defaults(func=_cmd_check)
