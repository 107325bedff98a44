"""The chapters: what ``_toc.yml`` lists, the environment they run in, and their shared first cell."""
from __future__ import annotations

from pathlib import Path

from handlib.errors import UsageError
from handlib.paths import REPO_ROOT

BOOK_DIR = REPO_ROOT / "book"

# The environment every chapter runs in, for stored outputs and nbval alike (see tests/README.md).
CHAPTER_ENV = {
    "PLOTLY_RENDERER": "plotly_mimetype+notebook_connected",
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "PYTHONHASHSEED": "0",
    "TQDM_MININTERVAL": "5",
}


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


def chapter_environment(profile: str, dataset: str, data_root: str | None) -> dict[str, str]:
    env = dict(CHAPTER_ENV, HANDLIB_PROFILE=profile, HANDLIB_DATASET=dataset)
    if data_root:
        env["HANDLIB_DATA_ROOT"] = str(Path(data_root).resolve())
    return env
