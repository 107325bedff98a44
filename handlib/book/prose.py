"""What a chapter may say and store: the checks behind ``tests/test_chapter_prose.py``.

Each function takes a notebook (``nbformat`` node) and returns a list of problems, each a short
string naming the cell, so a failing test says what to fix. The rules:

* **Numbers are computed.** A measured number with a unit (mm, ms, fps, frames/s, %, ×, M, GMAC,
  GFLOP...) typed in markdown is a problem: glue it (``{glue:text}`name` ``). The paper's own
  published numbers are marked ``<span class="paper">16.8 mm</span>`` and must be a value of
  ``data/paper_tables.csv`` (so the marker cannot launder a measured one).
* **Every glued name is used** in the chapter's markdown (a glued value nobody reads means the prose
  paraphrases it by hand).
* **The book speaks to readers**: no words that point at the project's own planning documents.
* **One structure for every paper chapter** (``PAPER_SECTIONS``, in order, as ``##`` titles).
* **Stored outputs are clean**: no stderr, at most one stdout stream per cell, no machine paths,
  no table column that is all NaN, no "not available" notice (committed pages are rendered with
  every resource present).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from handlib.paths import REPO_ROOT

# The ## sections of every paper chapter, in this order; a title may go on after ": ".
PAPER_SECTIONS = (
    "The idea",
    "The data",
    "Building blocks from scratch",
    "The network and its cost",
    "Training",
    "The paper's table, regenerated",
    "Analyses",
    "Speed",
    "What reproduced and what did not",
    "Deviations",
    "Questions for the reader",
)
PAPER_CHAPTER = re.compile(r"^1\d_")      # book/10_... to book/19_...: one paper each

UNITS = r"(?:mm|ms|fps|frames/s|samples/s|clips/s|%|×|x|M|GMAC|GMACs|GFLOP|GFLOPs|GFLOP/s|TFLOP/s)"
# A number, a unit, and not a dimension (3×3, 64 x 64) or part of a longer word.
TYPED_NUMBER = re.compile(rf"(?<![\w.\-/])(\d[\d,]*(?:\.\d+)?)\s?({UNITS})(?![\w/])(?!\s?\d)")
PAPER_MARK = re.compile(r'<span class="paper">(.*?)</span>', re.S)
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")
GLUE_DIRECTIVE = re.compile(r"```\{glue(?::\w+)?\}\s+([^\s`]+)")
GLUE_CALL = re.compile(r"\bglue\(\s*[\"']([^\"']+)[\"']")
INLINE_CODE = re.compile(r"`[^`\n]*`")
MATH = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$", re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
NOT_FOR_READERS = [re.compile(p, re.I) for p in (
    r"\b(?:the|this|our|a) spec\b", r"\bspec's\b", r"\bspecs/", r"architectures\.md", r"\bchoice \d+ of\b",
    r"\bthe issue\b", r"\bissue this chapter\b", r"\bthe bar\b", r"\bthird of the floor\b",
    r"\breach the bar\b")]
MACHINE_PATH = re.compile(r"(?<![\w.])(?:/tmp/|/root/|/home/|/work/|/Users/|/var/folders/|[A-Z]:\\\\)")
NOTICE = re.compile(r"Not available here|\(skipped: needs ")
BAD_PLURAL = re.compile(r"\b1 threads\b")


def markdown_cells(nb):
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"]


def _prose(text: str) -> str:
    """Markdown with what is not prose removed: comments, math, glue roles, inline code."""
    text = COMMENT.sub(" ", text)
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = MATH.sub(" ", text)
    text = GLUE_ROLE.sub(" ", text)
    return INLINE_CODE.sub(" ", text)


@lru_cache(maxsize=1)
def paper_values() -> frozenset:
    """Every value printed in ``data/paper_tables.csv``, as the strings it may be typed as."""
    import csv

    values = set()
    with open(REPO_ROOT / "data" / "paper_tables.csv", newline="") as f:
        for row in csv.DictReader(f):
            try:
                value = float(row["value"])
            except (TypeError, ValueError):
                continue
            values.update({f"{value:g}", f"{value:.1f}", f"{value:.2f}", f"{value:.3f}"})
    return frozenset(values)


def typed_numbers(nb) -> list[str]:
    """Measured numbers typed in markdown, and paper-marked numbers the paper tables do not hold."""
    problems = []
    for i, cell in markdown_cells(nb):
        text = cell.source
        for marked in PAPER_MARK.findall(text):
            for number, _unit in TYPED_NUMBER.findall(_prose(marked)) or [(n, "") for n in re.findall(r"\d[\d,]*(?:\.\d+)?", marked)]:
                if number.replace(",", "") not in paper_values():
                    problems.append(f"cell {i}: {marked!r} is marked as the paper's, but "
                                    f"{number} is in no row of data/paper_tables.csv")
        for number, unit in TYPED_NUMBER.findall(_prose(PAPER_MARK.sub(" ", text))):
            problems.append(f"cell {i}: typed number {number} {unit} (glue it, or mark the paper's own "
                            '<span class="paper">...</span>)')
    return problems


def glue_names(nb) -> tuple[set, set]:
    """(names glued in code cells, names used in markdown)."""
    glued = {m for c in nb.cells if c.cell_type == "code" for m in GLUE_CALL.findall(c.source)}
    used = set()
    for _, cell in markdown_cells(nb):
        for ref in GLUE_ROLE.findall(cell.source) + GLUE_DIRECTIVE.findall(cell.source):
            used.add(ref.split("::")[-1].split(":")[0].strip())
    return glued, used


def unused_glue(nb) -> list[str]:
    glued, used = glue_names(nb)
    return [f"glued {name!r} is used by no markdown cell" for name in sorted(glued - used)]


def words_not_for_readers(nb) -> list[str]:
    problems = []
    for i, cell in markdown_cells(nb):
        text = COMMENT.sub(" ", cell.source)
        for pattern in NOT_FOR_READERS:
            for match in pattern.finditer(text):
                problems.append(f"cell {i}: {match.group(0)!r} speaks of our planning, not to the reader")
    return problems


def section_titles(nb) -> list[str]:
    titles = []
    for _, cell in markdown_cells(nb):
        titles += [line[3:].strip() for line in cell.source.splitlines() if re.match(r"^## (?!#)", line)]
    return titles


def structure(nb) -> list[str]:
    """The ## titles of a paper chapter against PAPER_SECTIONS (each once, in order)."""
    titles = section_titles(nb)
    base = [t.split(":")[0].strip() if t.split(":")[0].strip() in PAPER_SECTIONS else t for t in titles]
    if base == list(PAPER_SECTIONS):
        return []
    return [f"## sections are {base}; a paper chapter has exactly {list(PAPER_SECTIONS)} in this order "
            "(a title may go on after ': '; use ### inside a section)"]


def _html_tables_all_nan_columns(html: str) -> list[str]:
    from bs4 import BeautifulSoup

    bad = []
    for table in BeautifulSoup(html, "html.parser").find_all("table"):
        header = [th.get_text(strip=True) for th in (table.find("thead") or table).find_all("tr")[0].find_all(["th", "td"])]
        rows = [[td.get_text(strip=True) for td in tr.find_all(["th", "td"])] for tr in table.find("tbody").find_all("tr")] \
            if table.find("tbody") else []
        rows = [r for r in rows if len(r) == len(header)]
        if not rows:
            continue
        for j, name in enumerate(header):
            if j and all(r[j] in ("NaN", "nan", "<NA>", "None") for r in rows):
                bad.append(name or f"column {j}")
    return bad


def output_problems(nb) -> list[str]:
    """Stored outputs a reader should not see."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        stdout = 0
        for output in cell.get("outputs", []):
            texts = []
            if output.output_type == "stream":
                if output.name == "stderr":
                    problems.append(f"cell {i}: stderr output {output.text[:80]!r}")
                else:
                    stdout += 1
                texts.append(output.text)
            elif output.output_type in ("display_data", "execute_result"):
                data = output.get("data", {})
                texts += [data.get("text/plain", ""), data.get("text/html", "")]
                record = data.get("application/papermill.record/text/plain", "")
                if str(record).startswith("np."):
                    problems.append(f"cell {i}: a glued numpy scalar {record!r} (a format spec cannot read it)")
                if "text/html" in data and "<table" in data["text/html"]:
                    for name in _html_tables_all_nan_columns(data["text/html"]):
                        problems.append(f"cell {i}: table column {name!r} is all NaN")
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                if MACHINE_PATH.search(text):
                    problems.append(f"cell {i}: machine path {MACHINE_PATH.search(text).group(0)!r}… in an output")
                if NOTICE.search(text):
                    problems.append(f"cell {i}: a missing-resource notice in a stored output")
                if BAD_PLURAL.search(text):
                    problems.append(f"cell {i}: '1 threads' in an output")
        if stdout > 1:
            problems.append(f"cell {i}: stdout split over {stdout} outputs (print one table per output)")
    return problems


def is_paper_chapter(path: Path) -> bool:
    return bool(PAPER_CHAPTER.match(Path(path).name))
