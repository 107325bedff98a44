"""``python -m handlib book run|build``: execute chapters with papermill, build the HTML book.

Chapters are the notebooks listed in ``_toc.yml``. ``book run`` executes them with a fixed
environment (threads, renderer, profile via env vars) so stored outputs and nbval agree; ``book``
profile runs write back in place (the committed outputs), other profiles into an output folder.
``book build`` renders stored outputs only (never executes) and works with no network: plotly.js
and the ipywidgets/require.js assets are served from ``book/_static``.
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
import time
from pathlib import Path

from handlib.cli import UsageError
from handlib.fileio import atomic_write_text
from handlib.profiles import DATASET_NAMES, PROFILE_NAMES

REPO_ROOT = Path(__file__).resolve().parent.parent
BOOK_DIR = REPO_ROOT / "book"
STATIC_DIR = BOOK_DIR / "_static"

# The environment every chapter runs in, for stored outputs and nbval alike (see tests/README.md).
CHAPTER_ENV = {
    "PLOTLY_RENDERER": "plotly_mimetype+notebook_connected",
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "PYTHONHASHSEED": "0",
    "TQDM_MININTERVAL": "5",
}

# npm packages a page would otherwise load from CDNs (ipywidgets: book-tooling.md A.1; MathJax for
# Sphinx math). Fetched once into book/_static/<folder> with `book assets`; served locally.
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

# Notebook metadata that changes on every run without changing any output.
_VOLATILE_NOTEBOOK_KEYS = ("papermill",)
_VOLATILE_CELL_KEYS = ("papermill", "execution")


def toc_files(toc_path: Path = REPO_ROOT / "_toc.yml") -> list[str]:
    """Every file listed in ``_toc.yml`` (root first), as written there (no suffix)."""
    import yaml

    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return files


def chapters() -> dict[str, Path]:
    """Chapter name (notebook stem) -> path, for every notebook in the table of contents."""
    found = {}
    for entry in toc_files():
        path = REPO_ROOT / f"{entry}.ipynb"
        if path.exists():
            found[path.stem] = path
    return found


def resolve_chapters(names: list[str] | None) -> list[Path]:
    """Chapter paths for ``names`` (stem, or stem without its number prefix); all when empty."""
    available = chapters()
    if not names:
        return list(available.values())
    aliases = {stem.split("_", 1)[-1]: stem for stem in available}
    picked = []
    for name in names:
        stem = name if name in available else aliases.get(name)
        if stem is None:
            raise UsageError(f"unknown chapter {name!r}; valid chapters: {', '.join(available)}")
        picked.append(available[stem])
    return picked


def install_cell_source() -> str:
    """The first cell of every chapter: on Colab or a fresh hub, install handlib (never torch) from
    ``_config.yml``'s repository, at the book's release tag, or from the default branch while that tag
    does not exist yet."""
    import yaml

    import handlib

    url = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())["repository"]["url"]
    return (
        "# Colab / a fresh hub: install the book's companion library (never torch) when it is missing:\n"
        "# the book's release tag, or the default branch where that tag does not exist yet.\n"
        "try:\n"
        "    import handlib\n"
        "except ImportError:\n"
        "    import subprocess, sys\n"
        f"    for ref in (\"@v{handlib.__version__}\", \"\"):\n"
        "        if subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                           \"handlib @ git+{url}\" + ref]).returncode == 0:\n"
        "            break\n"
        "    import handlib")


def strip_volatile_metadata(notebook_path: Path) -> None:
    """Drop papermill timestamps/durations and injected-parameter cells (values come via env vars)
    so re-running an unchanged chapter leaves git clean. Rewrites the file atomically."""
    nb = json.loads(notebook_path.read_text())
    for key in _VOLATILE_NOTEBOOK_KEYS:
        nb.get("metadata", {}).pop(key, None)
    cells = []
    for cell in nb.get("cells", []):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        for key in _VOLATILE_CELL_KEYS:
            cell.get("metadata", {}).pop(key, None)
        cells.append(cell)
    nb["cells"] = cells
    atomic_write_text(notebook_path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def chapter_environment(profile: str, dataset: str, data_root: str | None) -> dict[str, str]:
    env = dict(CHAPTER_ENV, HANDLIB_PROFILE=profile, HANDLIB_DATASET=dataset)
    if data_root:
        env["HANDLIB_DATA_ROOT"] = str(Path(data_root).resolve())
    return env


def _quiet_kernel_manager():
    """A kernel manager that starts the kernel over IPC (ipykernel warns about unencrypted TCP) and
    shuts an idle kernel down without the SIGINT that makes it log "KeyboardInterrupt caught in kernel"
    as an ERROR after a chapter that succeeded."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(transport="ipc", **kwargs)

        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:      # shutdown_kernel interrupts first; a finished chapter is idle
                await super()._async_interrupt_kernel()

    return QuietKernelManager


def run_chapters(paths: list[Path], profile: str, dataset: str, data_root: str | None,
                 out_dir: Path | None) -> int:
    """Execute chapters with papermill, each to completion or failure, then print one line per chapter
    (ok / partial and why / failed). Returns 0 when none failed (partial counts as run), else 1.

    A chapter is *partial* when it reported a missing resource through :mod:`handlib.notebook`
    (e.g. the published predictions): it ran, but skipped the cells that need it."""
    import papermill
    from tqdm.auto import tqdm

    from handlib.notebook import REPORT_ENV, read_report

    os.environ.update(chapter_environment(profile, dataset, data_root))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    kernel_manager = _quiet_kernel_manager()
    summary = []
    bar = tqdm(paths, desc=f"chapters ({profile})", unit="chapter")
    for path in bar:
        bar.set_postfix_str(path.stem)
        target = path if out_dir is None else out_dir / path.name
        # Execute into a temp file first: a failed run never leaves a half-written chapter.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{path.stem}.", suffix=".ipynb")
        os.close(fd)
        report = Path(tmp).with_suffix(".report")
        os.environ[REPORT_ENV] = str(report)
        started = time.monotonic()
        try:
            papermill.execute_notebook(
                str(path), tmp, kernel_name="python3", cwd=str(path.parent),
                progress_bar=True, request_save_on_cell_execute=False,
                kernel_manager_class=kernel_manager,
            )
        except papermill.PapermillExecutionError as err:
            Path(tmp).unlink(missing_ok=True)
            print(f"\nchapter {path.stem} failed in cell {err.cell_index} "
                  f"(execution count {err.exec_count}): {err.ename}: {err.evalue}", file=sys.stderr)
            summary.append((path.stem, "failed", f"cell {err.cell_index}: {err.ename}",
                            time.monotonic() - started))
            continue
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            os.environ.pop(REPORT_ENV, None)
            reasons = read_report(str(report))
            report.unlink(missing_ok=True)
        strip_volatile_metadata(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; chapters are ordinary readable files
        os.replace(tmp, target)
        summary.append((path.stem, "partial" if reasons else "ok", "; ".join(dict.fromkeys(reasons)),
                        time.monotonic() - started))
    print(format_summary(summary))
    return 1 if any(status == "failed" for _, status, _, _ in summary) else 0


def format_summary(rows: list[tuple[str, str, str, float]]) -> str:
    """One line per chapter: name, ok / partial / failed, why (for partial and failed), wall time."""
    width = max((len(name) for name, *_ in rows), default=0)
    lines = ["", "chapters:"]
    for name, status, why, seconds in rows:
        minutes, secs = divmod(round(seconds), 60)
        lines.append(f"  {name:<{width}}  {status:<7}  {minutes:2d} min {secs:02d} s"
                     + (f"  ({why})" if why else ""))
    return "\n".join(lines)


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


def _cmd_run(args) -> int:
    paths = resolve_chapters(args.chapter)
    if args.dataset != "synthetic" and not args.data_root:
        raise UsageError(f"--dataset {args.dataset} needs --data-root DIR (where its files are)")
    if args.data_root and not Path(args.data_root).is_dir():
        raise UsageError(f"--data-root {args.data_root!r} is not a directory")
    if args.profile == "book" and args.out is None:
        out_dir = None  # the committed outputs
    else:
        out_dir = Path(args.out or REPO_ROOT / "_build" / "executed" / args.profile)
    return run_chapters(paths, args.profile, args.dataset, args.data_root, out_dir)


def _cmd_build(args) -> int:
    return build_book(strict=not args.no_strict)


def _cmd_assets(args) -> int:
    prepare_static_assets(fetch=True)
    print(f"static assets ready in {STATIC_DIR}")
    return 0


def add_commands(sub) -> None:
    book = sub.add_parser("book", help="execute chapters, build the HTML book",
                          description="Execute the book's chapters and build the HTML book.")
    book_sub = book.add_subparsers(dest="book_command", metavar="ACTION", required=True)

    run = book_sub.add_parser(
        "run", help="execute chapters with papermill",
        description="Execute chapters with papermill. Profile 'book' rewrites the committed "
                    "outputs in place; other profiles write into --out "
                    "(default _build/executed/PROFILE).")
    run.add_argument("--profile", default="smoke", choices=PROFILE_NAMES,
                     help="run size (default: smoke)")
    run.add_argument("--chapter", action="append", metavar="NAME",
                     help="chapter to run (repeatable; default: all chapters in _toc.yml)")
    run.add_argument("--dataset", default="synthetic", choices=DATASET_NAMES,
                     help="dataset the chapters train/evaluate on (default: synthetic)")
    run.add_argument("--data-root", metavar="DIR", help="folder holding the real dataset")
    run.add_argument("--out", metavar="DIR", help="where executed notebooks go")
    run.set_defaults(func=_cmd_run)

    build = book_sub.add_parser("build", help="build the HTML book into _build/html (offline)",
                                description="Build the HTML book from the stored outputs; "
                                            "never executes notebooks.")
    build.add_argument("--no-strict", action="store_true", help="do not turn warnings into errors")
    build.set_defaults(func=_cmd_build)

    assets = book_sub.add_parser("assets", help="fetch the offline JS assets (needs npm once)",
                                 description="Copy plotly.min.js and fetch the ipywidgets JS into "
                                             "book/_static so builds work offline.")
    assets.set_defaults(func=_cmd_assets)

    from handlib.book_check import add_check_command

    add_check_command(book_sub)
