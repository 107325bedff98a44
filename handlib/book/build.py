"""``python -m handlib book assets|build``: the offline HTML book.

``book build`` renders stored outputs only (never executes) and works with no network: plotly.js,
MathJax and the ipywidgets/require.js assets are served from ``book/_static`` (fetched once from npm
by ``book assets``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from handlib.book.chapters import BOOK_DIR, toc_files
from handlib.fileio import atomic_write_text
from handlib.paths import REPO_ROOT

STATIC_DIR = BOOK_DIR / "_static"

# npm packages a page would otherwise load from CDNs (ipywidgets: myst-nb's widget embedding loads
# require.js and html-manager's embed-amd.js; MathJax for Sphinx math). Fetched once into
# book/_static/<folder> with `book assets`; served locally.
STATIC_NPM_PACKAGES = {
    "requirejs": ("2.3.4", "widgets", ["require.js"]),
    "@jupyter-widgets/html-manager": ("1.0.6", "widgets", ["dist"]),
    "mathjax": ("3.2.2", "mathjax", ["es5"]),
}
CDN_HOSTS = ("cdn.plot.ly", "cdnjs", "unpkg", "jsdelivr")
# Remote scripts that stored outputs and Sphinx extensions add; the book serves its own copies
# (plotly.min.js, MathJax) or does not use them (thebe: live code is not enabled).
_REMOTE_SCRIPT_PATTERNS = (
    re.compile(r'<script[^>]*\ssrc="https://(?:cdn\.plot\.ly|cdnjs\.cloudflare\.com)/[^"]*"[^>]*>\s*</script>'),
    re.compile(r'<script type="module">\s*import "https://cdn\.plot\.ly/[^"]*"\s*</script>'),
    re.compile(r'<script[^>]*>const THEBE_JS_URL = "https://unpkg\.com/[^<]*</script>'),
)


def prepare_static_assets(fetch: bool = True) -> None:
    """Copy plotly.min.js from the installed plotly and unpack the npm assets (widgets, MathJax)
    into ``book/_static`` so the built book loads nothing from a CDN."""
    import plotly

    STATIC_DIR.mkdir(parents=True, exist_ok=True)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not plotly_js.exists():
        raise FileNotFoundError(f"{plotly_js} not found: the installed plotly ships no plotly.min.js")
    shutil.copyfile(plotly_js, STATIC_DIR / "plotly.min.js")

    folders = sorted({folder for _, folder, _ in STATIC_NPM_PACKAGES.values()})
    for folder in folders:
        packages = {name: (version, members) for name, (version, f, members)
                    in STATIC_NPM_PACKAGES.items() if f == folder}
        _fetch_npm_folder(STATIC_DIR / folder, packages, fetch)


def _fetch_npm_folder(target: Path, packages: dict, fetch: bool) -> None:
    """Unpack ``members`` of each npm package into ``target`` unless its versions.json matches."""
    marker = target / "versions.json"
    wanted = {name: version for name, (version, _) in packages.items()}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return
    if not fetch:
        raise FileNotFoundError(
            f"{target} is missing or outdated (wanted {wanted}); run `python -m handlib book assets` "
            "once (it needs the npm registry), then builds work offline")
    if shutil.which("npm") is None:
        raise FileNotFoundError("npm is needed once to fetch the book's JS assets "
                                "(Debian: apt-get install npm); then builds work offline")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, (version, members) in packages.items():
            packed = subprocess.run(["npm", "pack", "--silent", f"{name}@{version}"], cwd=staging,
                                    check=True, capture_output=True, text=True).stdout.split()[-1]
            with tarfile.open(staging / packed) as tar:
                tar.extractall(staging / "unpacked", filter="data")
            for member in members:
                src = staging / "unpacked" / "package" / member
                dst = staging / "out" / member
                if src.is_dir():
                    shutil.copytree(src, dst, dirs_exist_ok=True)
                else:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dst)
            shutil.rmtree(staging / "unpacked")
        (staging / "out" / "versions.json").write_text(json.dumps(wanted))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / "out", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_book(strict: bool = True) -> int:
    """Jupyter Book 1 HTML build into ``_build/html``; never executes notebooks."""
    prepare_static_assets(fetch=False)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(REPO_ROOT), "--builder", "html",
           "--keep-going"]
    if strict:
        cmd.append("-W")
    result = subprocess.run(cmd, cwd=REPO_ROOT)
    if result.returncode != 0:
        print("book build failed (see the warnings/errors above)", file=sys.stderr)
        return result.returncode
    html_dir = REPO_ROOT / "_build" / "html"
    copy_widget_fonts(html_dir)
    offenders = make_html_offline(html_dir)
    if offenders:
        print("built pages still reference a CDN: " + ", ".join(offenders), file=sys.stderr)
        return 1
    index = html_dir / "index.html"
    missing = [p for p in [index] + [REPO_ROOT / "_build" / "html" / f"{f}.html" for f in toc_files()]
               if not p.exists()]
    if missing:
        print("book build produced no HTML for: " + ", ".join(map(str, missing)), file=sys.stderr)
        return 1
    print(f"built {index}")
    return 0


def copy_widget_fonts(html_dir: Path) -> None:
    """html-manager's embed-amd.js loads its icon fonts from ``@jupyter-widgets/html-manager/dist/``
    relative to the page; every chapter page lives in ``book/``, so the fonts go there."""
    target = html_dir / "book" / "@jupyter-widgets" / "html-manager" / "dist"
    target.mkdir(parents=True, exist_ok=True)
    for font in (STATIC_DIR / "widgets" / "dist").iterdir():
        if font.suffix in (".woff", ".woff2", ".ttf", ".eot", ".svg"):
            shutil.copyfile(font, target / font.name)


def make_html_offline(html_dir: Path) -> list[str]:
    """Remove remote script tags from the built pages; return the pages that still name a CDN."""
    offenders = []
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        cleaned = text
        for pattern in _REMOTE_SCRIPT_PATTERNS:
            cleaned = pattern.sub("", cleaned)
        if cleaned != text:
            atomic_write_text(page, cleaned)
        hits = [host for host in CDN_HOSTS if host in cleaned]
        if hits:
            offenders.append(f"{page.relative_to(html_dir)} ({', '.join(hits)})")
    return offenders
