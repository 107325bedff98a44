"""Where the repository is: the one place that computes it (a leaf module)."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def in_checkout() -> bool:
    """True when handlib runs from a clone of the repository (not from an installed wheel)."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "handlib").is_dir()
