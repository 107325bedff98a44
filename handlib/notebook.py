"""What a chapter does when something it needs is not on this machine: say so, skip, and tell ``book run``.

A chapter calls :func:`need` once per optional resource (e.g. the published predictions). When the
resource is there, nothing is printed. When it is not, the reader gets one short paragraph saying what
is missing and how to provide it, and every later cell that starts with ``%%requires NAME`` prints one
line instead of running; the rest of the chapter runs as usual. A chapter that skipped a cell is
reported *partial* to ``python -m handlib book run`` (through the file named by
``HANDLIB_CHAPTER_REPORT``); one that only drew a figure without an optional reference is not.
"""
from __future__ import annotations

import json
import os

REPORT_ENV = "HANDLIB_CHAPTER_REPORT"

_available: dict[str, bool] = {}
_why: dict[str, str] = {}


def need(name: str, missing_reason: str | None) -> bool:
    """Record resource ``name`` as available (``missing_reason`` None) or missing; return availability."""
    _register_magic()
    _available[name] = missing_reason is None
    if missing_reason is not None:
        _why[name] = missing_reason
        print(f"Not available here: {name}. {missing_reason}\n"
              f"What needs it is left out; everything else in this chapter runs.")
    return missing_reason is None


def available(name: str) -> bool:
    """Whether :func:`need` found ``name`` (a resource never declared counts as missing)."""
    return _available.get(name, False)


def report_partial(reason: str) -> None:
    """Tell ``book run`` (when it runs this kernel) that the chapter ran only in part, and why."""
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"status": "partial", "why": reason}) + "\n")


def read_report(path: str) -> list[str]:
    """Reasons a chapter reported itself partial (empty: it ran in full)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["why"] for line in f if line.strip()]


def _requires(line: str, cell: str) -> None:
    """``%%requires NAME``: run the cell only when NAME was found by :func:`need`."""
    name = line.strip()
    if name not in _available:
        raise NameError(f"%%requires {name}: call handlib.notebook.need({name!r}, ...) in an earlier cell")
    if not _available[name]:
        print(f"(skipped: needs {name})")
        report_partial(f"{name} missing")
        return
    from IPython import get_ipython

    result = get_ipython().run_cell(cell)
    result.raise_error()


def _register_magic() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and "requires" not in shell.magics_manager.magics["cell"]:
        shell.register_magic_function(_requires, magic_kind="cell", magic_name="requires")


def glue(name: str, value, display: bool = False) -> None:
    """Put a computed value into the chapter's prose: the built book shows it wherever the markdown
    says ``{glue:text}`name``` (MyST-NB's glue, format specs allowed: ``{glue:text}`name:.2f```).
    In a plain Jupyter session (no MyST-NB) it does nothing; the value is still printed by its cell."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    # A numpy scalar's text is "np.float64(1.5)", which a format spec cannot read: glue the number.
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        value = value.item()
    myst_glue(name, value, display=display)


_register_magic()     # importing handlib.notebook in a kernel makes %%requires known
