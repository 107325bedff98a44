"""Chapters fail soft: a missing resource makes a chapter partial (explained, skipped), not failed."""

import nbformat

from handlib.book import chapters, run


def _notebook(tmp_path, name, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_summary_says_ok_partial_and_failed(tmp_path, capsys):
    ok = _notebook(tmp_path, "01_fine.ipynb", ["print('fine')"])
    partial = _notebook(tmp_path, "02_partial.ipynb", [
        "from handlib import notebook\nhave = notebook.need('the moon', 'it is far away; bring a ladder')",
        "%%requires the moon\nprint('never runs')",
        "print('after the skipped cell')"])
    failed = _notebook(tmp_path, "03_broken.ipynb", ["raise ValueError('boom')"])
    out = tmp_path / "out"
    assert run.run_chapters([ok, partial, failed], "smoke", "synthetic", None, out) == 1
    summary = capsys.readouterr().out.splitlines()
    lines = {line.split()[0]: line for line in summary if line.startswith("  ")}
    assert lines["01_fine"].split()[1] == "ok"
    assert lines["02_partial"].split()[1] == "partial" and "(the moon missing)" in lines["02_partial"]
    assert lines["03_broken"].split()[1] == "failed" and "ValueError" in lines["03_broken"]
    # The partial chapter was written, with its explanation and the skipped cell's one line.
    cells = nbformat.read(out / "02_partial.ipynb", as_version=4).cells
    text = ["".join(o.get("text", "") for o in c.outputs) for c in cells]
    assert "Not available here: the moon. it is far away; bring a ladder" in text[0]
    assert text[1] == "(skipped: needs the moon)\n" and text[2] == "after the skipped cell\n"
    assert not list(out.glob(".*")), "temporary notebook or report left behind"


def test_finished_chapter_leaves_no_kernel_noise(tmp_path, capfd):
    ok = _notebook(tmp_path, "01_fine.ipynb", ["print('fine')"])
    assert run.run_chapters([ok], "smoke", "synthetic", None, tmp_path / "out") == 0
    err = capfd.readouterr().err
    assert "KeyboardInterrupt" not in err and "without encryption" not in err, err


def test_evaluation_chapter_without_published_files_is_partial(tmp_path, monkeypatch, capsys):
    """The evaluation chapter with an empty cache and no network: it explains, skips and completes."""
    monkeypatch.setenv("HANDLIB_PUBLISHED_DIR", str(tmp_path / "empty"))
    # An unreachable proxy makes every download fail at once, as on a machine without GitHub.
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    [chapter] = chapters.resolve_chapters(["evaluation"])
    assert run.run_chapters([chapter], "smoke", "synthetic", None, tmp_path / "out") == 0
    summary = capsys.readouterr().out
    assert "03_evaluation" in summary and "partial" in summary and "(published missing)" in summary
    nb = nbformat.read(tmp_path / "out" / chapter.name, as_version=4)
    outputs = ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells if c.cell_type == "code"]
    explained = [o for o in outputs if o.startswith("Not available here: published.")]
    assert len(explained) == 1
    assert "python -m handlib published fetch" in explained[0] and "HANDLIB_PUBLISHED_DIR" in explained[0]
    skipped = sum(o == "(skipped: needs published)\n" for o in outputs)
    requiring = sum(c.source.startswith("%%requires published") for c in nb.cells if c.cell_type == "code")
    assert skipped == requiring > 0
    assert not any(o.output_type == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
