"""The book's own tooling: CLI errors, chapter conventions, metadata stripping, offline HTML, nbval."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

import handlib
from handlib.book import build, chapters, run
from handlib.cli import build_parser, main

REPO = Path(__file__).resolve().parent.parent


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "handlib", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_unknown_profile_exits_2_listing_valid_profiles():
    result = _run_cli("book", "run", "--profile", "nonsense")
    assert result.returncode == 2
    for name in ("smoke", "book", "full"):
        assert name in result.stderr


def test_unknown_dataset_exits_2():
    result = _run_cli("book", "run", "--dataset", "imagenet")
    assert result.returncode == 2
    assert "synthetic" in result.stderr and "nyu" in result.stderr


def test_unknown_chapter_exits_2_listing_chapters(capsys):
    assert main(["book", "run", "--chapter", "no_such_chapter"]) == 2
    err = capsys.readouterr().err
    assert "no_such_chapter" in err
    for stem in chapters.chapters():
        assert stem in err


def _all_parsers(parser, prefix=()):
    yield prefix, parser
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, prefix + (name,))


def test_help_works_for_every_command(capsys):
    for path, _ in _all_parsers(build_parser()):
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0, path
        assert "usage:" in capsys.readouterr().out


def test_top_level_help_lists_each_commands_actions(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "book run | build | assets | check" in out and "published list | fetch" in out


def _chapter_notebooks():
    return list(chapters.chapters().values())


def test_install_cell_names_the_configured_repository_and_the_book_version():
    source = chapters.install_cell_source()
    url = yaml.safe_load((REPO / "_config.yml").read_text())["repository"]["url"]
    assert f'"handlib @ git+{url}" + ref' in source
    assert f'for ref in ("@v{handlib.__version__}", ""):' in source   # the tag, then the default branch
    assert "import torch" not in source and "\"torch" not in source    # never installs torch


def test_toc_lists_only_existing_files():
    for entry in chapters.toc_files():
        assert (REPO / f"{entry}.ipynb").exists() or (REPO / f"{entry}.md").exists(), entry


@pytest.mark.parametrize("notebook", _chapter_notebooks(), ids=lambda p: p.stem)
def test_chapter_conventions(notebook):
    nb = nbformat.read(notebook, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup, params = code[0], code[1]
    assert "setup" in setup.metadata.get("tags", [])
    assert setup.source == chapters.install_cell_source(), "install cell differs from chapters.install_cell_source()"
    assert "parameters" in params.metadata.get("tags", [])
    for name in ("profile", "dataset", "data_root"):
        assert re.search(rf"^{name}\s*=", params.source, re.M), name
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert all(c.execution_count is not None for c in code if c.outputs), "unrun cell with outputs"
    for cell in code:
        for output in cell.outputs:
            assert output.output_type != "error", f"stored error output in {notebook.name}"
    assert "papermill" not in nb.metadata


def test_a_cells_prints_are_stored_as_one_stream_however_the_kernel_flushed_them(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(...)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="a\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="b\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="warn\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="c\n"),
                    nbformat.v4.new_output("display_data", data={"text/plain": "table"}),
                    nbformat.v4.new_output("stream", name="stdout", text="d\n")]
    nb.cells = [cell]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    run.strip_volatile_metadata(path)
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert [(o.get("name"), o.get("text")) for o in outputs] == [
        ("stdout", "a\nb\n"), ("stderr", "warn\n"), ("stdout", "c\n"), (None, None), ("stdout", "d\n")]


def test_strip_volatile_metadata_is_idempotent(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["papermill"] = {"duration": 1.0}
    cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00"}
    injected = nbformat.v4.new_code_cell("profile = 'book'")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells = [cell, injected]
    nb.metadata["papermill"] = {"start_time": "now"}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    run.strip_volatile_metadata(path)
    first = path.read_text()
    run.strip_volatile_metadata(path)
    assert path.read_text() == first
    stripped = json.loads(first)
    assert "papermill" not in stripped["metadata"]
    assert len(stripped["cells"]) == 1
    assert stripped["cells"][0]["metadata"] == {}


def test_make_html_offline_removes_cdn_scripts(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        '<script type="module">import "https://cdn.plot.ly/plotly-4.1.1.min"</script>'
        '<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/3.2.2/es5/tex-svg.min.js"></script>'
        '<script charset="utf-8" src="https://cdn.plot.ly/plotly-4.1.1.min.js" integrity="x" '
        'crossorigin="anonymous"></script>'
        '<script>const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"; const a = 1</script>'
        '<div class="plotly-graph-div"></div>')
    assert build.make_html_offline(tmp_path) == []
    assert page.read_text() == '<div class="plotly-graph-div"></div>'
    (tmp_path / "other.html").write_text('<img src="https://cdn.jsdelivr.net/x.png">')
    assert build.make_html_offline(tmp_path) == ["other.html (jsdelivr)"]


def _tiny_notebook(stored_output: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    checked = nbformat.v4.new_code_cell("print(6 * 7)", execution_count=1)
    checked.metadata["tags"] = ["nbval-check-output"]
    checked.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored_output)]
    unchecked = nbformat.v4.new_code_cell("print(6 * 8)", execution_count=2)
    unchecked.outputs = [nbformat.v4.new_output("stream", name="stdout", text="anything\n")]
    nb.cells = [checked, unchecked]
    return nb


@pytest.mark.parametrize("stored, passes", [("42\n", True), ("41\n", False)])
def test_nbval_setup_fails_on_a_wrong_checked_output(tmp_path, stored, passes):
    """The README test command's nbval options catch a tampered checked cell (and only that)."""
    path = tmp_path / "probe.ipynb"
    nbformat.write(_tiny_notebook(stored), path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-c", str(REPO / "pyproject.toml"),
         "--rootdir", str(REPO), str(path)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert (result.returncode == 0) == passes, result.stdout[-2000:]


def test_failed_chapter_names_chapter_and_cell(tmp_path, capsys):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('boom')")]
    path = tmp_path / "07_broken.ipynb"
    nbformat.write(nb, path)
    out = tmp_path / "out"
    assert run.run_chapters([path], "smoke", "synthetic", None, out) == 1
    err = capsys.readouterr().err
    assert "07_broken" in err and "cell 1" in err and "ValueError: boom" in err
    assert not (out / path.name).exists(), "a failed run must not leave a half-written chapter"
    assert not list(out.glob(".*.ipynb")), "temporary notebook left behind"


def test_intro_lists_written_chapters_and_marks_the_rest_in_preparation():
    """Every numbered paper in the intro either links an existing chapter in _toc.yml or says it is in
    preparation; every chapter in _toc.yml is linked from the intro."""
    intro = (REPO / "book" / "intro.md").read_text()
    items = re.findall(r"^\d\. (.*?)(?=^\d\. |^\s*$)", intro, re.M | re.S)
    assert len(items) == 5, items
    toc = set(chapters.toc_files())
    linked = set()
    for item in items:
        links = re.findall(r"\]\(([\w.]+)\.ipynb\)", item)
        assert bool(links) != ("In preparation" in item), item
        linked.update(f"book/{name}" for name in links)
    linked.update(f"book/{name}" for name in re.findall(r"\]\(([\w.]+)\.ipynb\)", intro))
    assert linked <= toc, linked - toc
    assert toc - {"book/intro"} <= linked, toc - linked


def test_stored_progress_bars_are_dropped_but_other_widgets_kept(tmp_path):
    nb = nbformat.v4.new_notebook()
    widget = "application/vnd.jupyter.widget-view+json"
    cell = nbformat.v4.new_code_cell("train()", execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={widget: {"model_id": "a"},
                                                     "text/plain": "epoch 1/3:  40%|####      | 2/5 [00:01<00:01]"}),
        nbformat.v4.new_output("stream", name="stdout", text="best val 25.3 mm\n"),
        nbformat.v4.new_output("display_data", data={widget: {"model_id": "b"},
                                                     "text/plain": "HBox(children=(FloatSlider(value=0.3),))"}),
    ]
    nb.cells = [cell]
    # Saved widget models: the bar "a" (with its child "a1") and the slider box "b" (with child "b1").
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {
        "a": {"state": {"children": ["IPY_MODEL_a1"]}}, "a1": {"state": {}},
        "b": {"state": {"children": ["IPY_MODEL_b1"]}}, "b1": {"state": {}}}}}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    run.strip_volatile_metadata(path)
    stored = nbformat.read(path, as_version=4)
    outputs = stored.cells[0].outputs
    assert [o.get("text") or o["data"]["text/plain"] for o in outputs] == [
        "best val 25.3 mm\n", "HBox(children=(FloatSlider(value=0.3),))"]
    assert set(stored.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]) == {"b", "b1"}
