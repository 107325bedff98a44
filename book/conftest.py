"""nbval runs each chapter in the environment its stored outputs were made in, with the smoke profile.

Loaded by pytest before any chapter kernel starts; kernels inherit this process's environment.
Chapters that use the published predictions carry the marker ``published``; a chapter whose checked
cells need them is skipped (with the reason and how to get the files) when they are not here, since its
checked outputs could not match. Its partial run is tested in tests/test_book_partial.py.
"""
import json
import os
from pathlib import Path

import pytest

from handlib.book.chapters import CHAPTER_ENV
from handlib.data import published

os.environ.update(CHAPTER_ENV)
os.environ["HANDLIB_PROFILE"] = "smoke"
os.environ.setdefault("HANDLIB_DATASET", "synthetic")

REQUIRES_PUBLISHED = "%%requires published"
NEEDS_PUBLISHED = 'need("published"'


def published_use(notebook: Path) -> tuple[bool, bool]:
    """(uses the published files at all, a checked cell needs them)."""
    cells = json.loads(notebook.read_text()).get("cells", [])
    sources = ["".join(c.get("source", "")) for c in cells if c.get("cell_type") == "code"]
    checked = ["".join(c.get("source", "")) for c in cells if c.get("cell_type") == "code"
               and "nbval-check-output" in c.get("metadata", {}).get("tags", [])]
    return (any(NEEDS_PUBLISHED in s for s in sources),
            any(s.lstrip().startswith(REQUIRES_PUBLISHED) for s in checked))


def pytest_collection_modifyitems(config, items):
    missing = published.missing_files()
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix != ".ipynb":
            continue
        uses, checked_needs = published_use(path)
        if uses:
            item.add_marker(pytest.mark.published)
        # Under HANDLIB_REQUIRE_PUBLISHED (CI's run with the files) a missing file fails instead.
        if checked_needs and missing and not os.environ.get("HANDLIB_REQUIRE_PUBLISHED"):
            item.add_marker(pytest.mark.skip(
                reason=f"{path.name} checks outputs computed from the published predictions, which are not "
                       f"in {published.cache_dir()}: {published.HOW_TO_PROVIDE}"))
