"""Fixtures shared by the unit tests.

Tests never read files outside the repository by path: data the book ships is read from ``data/``,
and the published predictions are found where the library finds them (``HANDLIB_PUBLISHED_DIR`` or
the user cache) through the ``published_dir`` fixture.
"""
import os
from pathlib import Path

import pytest

from handlib.data import published

REPO_ROOT = Path(__file__).resolve().parents[1]
# Set by CI's second test run (the one that points HANDLIB_PUBLISHED_DIR at a verified copy): there a
# missing file is a failure, so the tests that need the files cannot be skipped silently.
REQUIRE_PUBLISHED_ENV = "HANDLIB_REQUIRE_PUBLISHED"


def published_missing_reason() -> str | None:
    """Why the published predictions are unusable here, or None when every file is present."""
    missing = published.missing_files()
    if not missing:
        return None
    return (f"published predictions not in {published.cache_dir()} ({len(missing)} of "
            f"{len(published.all_files())} files missing): {published.HOW_TO_PROVIDE}")


@pytest.fixture
def published_dir() -> Path:
    """The folder holding the published predictions; skips the test (fails under
    HANDLIB_REQUIRE_PUBLISHED=1) when they are not there."""
    reason = published_missing_reason()
    if reason:
        if os.environ.get(REQUIRE_PUBLISHED_ENV):
            pytest.fail(reason)
        pytest.skip(reason)
    return published.cache_dir()


def pytest_collection_modifyitems(config, items):
    # `pytest -m published` selects exactly the tests that read the published files.
    for item in items:
        if "published_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.published)
