"""``python -m handlib book check``: open the built pages in headless Chromium, as a reader would.

Fails when a page logs a JavaScript error or a local asset fails to load, or when a chapter whose
notebook holds a plotly figure shows no rendered figure. Needs Debian's ``chromium`` and
``chromium-driver`` and the ``selenium`` package (all installed by ``.ci/run``).
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from handlib.book import REPO_ROOT, toc_files

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--allow-file-access-from-files", "--window-size=1280,900")
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def notebook_output_kinds(notebook: Path) -> set[str]:
    """Mime types present in a notebook's stored outputs."""
    kinds = set()
    for cell in json.loads(notebook.read_text()).get("cells", []):
        for output in cell.get("outputs", []):
            kinds.update(output.get("data", {}))
    return kinds


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary:
        options.binary_location = binary
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        raise FileNotFoundError("headless check needs chromium and chromedriver "
                                "(Debian: apt-get install chromium chromium-driver)")
    return webdriver.Chrome(options=options, service=Service(driver_path))


def _wait_for(driver, script: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.execute_script(script):
            return True
        time.sleep(0.2)
    return False


def check_pages(html_dir: Path, timeout: float = 20.0) -> list[str]:
    """Problems found on the intro page and every chapter page (empty list: all good)."""
    problems = []
    driver = _driver()
    try:
        for entry in toc_files():
            page = html_dir / f"{entry}.html"
            if not page.exists():
                problems.append(f"{entry}: no built page {page}")
                continue
            notebook = REPO_ROOT / f"{entry}.ipynb"
            kinds = notebook_output_kinds(notebook) if notebook.exists() else set()
            driver.get(page.as_uri())
            _wait_for(driver, "return document.readyState === 'complete'", timeout)
            if PLOTLY_MIME in kinds and not _wait_for(
                    driver, "return document.querySelectorAll('.plotly .main-svg').length > 0",
                    timeout):
                problems.append(f"{entry}: notebook has a plotly figure but none rendered")
            if WIDGET_MIME in kinds and not _wait_for(
                    driver, "return document.querySelectorAll('.widget-container, .jupyter-widgets')"
                            ".length > 0", timeout):
                problems.append(f"{entry}: notebook has ipywidgets but none rendered")
            for record in driver.get_log("browser"):
                if record.get("level") == "SEVERE":
                    problems.append(f"{entry}: {record.get('message')}")
    finally:
        driver.quit()
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
        description="Open the intro and every chapter page of the built book in headless "
                    "Chromium; fail on JavaScript errors, missing local assets or plotly figures "
                    "that did not render.")
    check.add_argument("--html-dir", default=str(REPO_ROOT / "_build" / "html"),
                       help="built book (default: _build/html)")
    check.set_defaults(func=_cmd_check)
