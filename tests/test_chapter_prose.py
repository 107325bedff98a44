"""Every chapter's prose and stored outputs (handlib.book.prose): computed numbers, used glue, words
for readers, one structure for the paper chapters, clean outputs. The unit tests below show each
rule failing on text the chapters once had."""
from __future__ import annotations

import nbformat
import pytest

from handlib.book import chapters, prose

NOTEBOOKS = list(chapters.chapters().values())


def _nb(markdown: list[str] = (), code: list[str] = (), outputs: list = ()):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(m) for m in markdown] + [nbformat.v4.new_code_cell(c) for c in code]
    if outputs:
        cell = nbformat.v4.new_code_cell("x")
        cell.outputs = outputs
        nb.cells.append(cell)
    return nb


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_prose_and_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    problems = (prose.typed_numbers(nb) + prose.unused_glue(nb) + prose.words_not_for_readers(nb)
                + prose.output_problems(nb))
    if prose.is_paper_chapter(notebook):
        problems += prose.structure(nb)
    assert not problems, f"{notebook.name}:\n" + "\n".join(problems)


def test_paper_chapters_exist_for_the_structure_check():
    assert sum(prose.is_paper_chapter(p) for p in NOTEBOOKS) >= 3


# --- each rule fails on old text --------------------------------------------------------------

def test_typed_measurements_fail_and_glued_or_paper_marked_ones_pass():
    old = "At the paper's size the network runs about 20 times CrossInfoNet: 7.0 fps against 160.5 fps, 29.4× the FLOPs."
    assert len(prose.typed_numbers(_nb([old]))) == 3
    assert prose.typed_numbers(_nb(["Question 5: 23.8 M parameters and 0.55 GMAC."]))
    new = "It runs {glue:text}`speed_ratio:.1f` times slower; the paper reports <span class=\"paper\">11.17 mm</span>."
    assert prose.typed_numbers(_nb([new])) == []
    # the marker cannot launder a number the paper tables do not hold
    assert prose.typed_numbers(_nb(['The paper: <span class="paper">12.3456 mm</span>.']))
    # dimensions, code and maths are not measurements
    assert prose.typed_numbers(_nb(["A 3×3 conv on 64 x 64 crops, `--width 32`, $\\lambda = 100$."])) == []


def test_a_glued_name_no_markdown_uses_fails():
    nb = _nb(["The stack error is {glue:text}`stack_err:.2f` mm."],
             ['notebook.glue("stack_err", 1.0)\nnotebook.glue("stack_sentence", "...")'])
    assert prose.unused_glue(nb) == ["glued 'stack_sentence' is used by no markdown cell"]


def test_words_about_our_planning_fail():
    for old in ("The spec recommends per-map means.", "(choice 1 of the spec)", "see `specs/architectures.md`",
                "The issue this chapter answers sets a bar", "Could a longer run reach the bar?",
                "at most a third of the floor"):
        assert prose.words_not_for_readers(_nb([old])), old
    assert prose.words_not_for_readers(_nb(["We read the maps as per-map means, because Adam is scale-free."])) == []


def test_structure_must_follow_the_paper_sections():
    good = _nb(["# T\n\n## " + "\n\n## ".join(prose.PAPER_SECTIONS)])
    assert prose.structure(good) == []
    titled = list(prose.PAPER_SECTIONS)
    titled[5] = "The paper's table, regenerated: Table IV"
    assert prose.structure(_nb(["## " + "\n\n## ".join(titled)])) == []
    old = _nb(["## The data\n\n## The network, block by block\n\n## Deviations\n\n## Questions for the reader"])
    assert prose.structure(old)


def test_output_hygiene_catches_stderr_paths_nan_columns_notices_and_split_stdout():
    out = nbformat.v4.new_output
    table = ("<table><thead><tr><th></th><th>ours</th><th>recomputed NYU</th></tr></thead>"
             "<tbody><tr><th>a</th><td>1.0</td><td>NaN</td></tr><tr><th>b</th><td>2.0</td><td>NaN</td></tr></tbody></table>")
    problems = prose.output_problems(_nb(outputs=[
        out("stream", name="stderr", text="FutureWarning: ..."),
        out("stream", name="stdout", text="cache: /root/.cache/handlib/published\n"),
        out("display_data", data={"text/html": table, "text/plain": "t"}),
        out("stream", name="stdout", text="Not available here: published.\n"),
        out("display_data", data={"text/plain": "device: CPU (1 threads)"}),
        out("display_data", data={"application/papermill.record/text/plain": "np.float64(10.2)"}),
    ]))
    text = "\n".join(problems)
    assert "stderr" in text and "machine path" in text and "'recomputed NYU' is all NaN" in text
    assert "missing-resource notice" in text and "stdout split over 2" in text and "'1 threads'" in text and "numpy scalar" in text
    clean = prose.output_problems(_nb(outputs=[out("stream", name="stdout", text="CPU (2 threads)\n")]))
    assert clean == []
