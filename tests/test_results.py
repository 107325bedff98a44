"""Results records: write atomically, load back, and turn into mean ± std tables."""
from __future__ import annotations

import json
import math

import pytest

from handlib import results
from handlib.recipe import Recipe
from handlib.train import TrainResult


def fake_result(val_mm: float) -> TrainResult:
    history = [{"epoch": 1, "lr": 1e-3, "train": {"total": 0.5}, "val": {"mean_error_mm": val_mm + 1},
                "samples_per_s": 100.0},
               {"epoch": 2, "lr": 9.6e-4, "train": {"total": 0.4}, "val": {"mean_error_mm": val_mm},
                "samples_per_s": 110.0}]
    return TrainResult(history=history, best={"epoch": 2, "mean_error_mm": val_mm},
                       final_val=history[-1]["val"], best_state=None, global_step=20, wall_s=12.3456,
                       device="CPU (2 threads)")


def record(seed: int, test_mm: float, variant: str = "full", profile: str = "book") -> dict:
    return results.make_record(chapter="crossinfonet", model="crossinfonet", variant=variant,
                               dataset="synthetic", convention="nyu", profile=profile, seed=seed,
                               result=fake_result(test_mm - 1), test_metrics={"mean_error_mm": test_mm},
                               recipe=Recipe(schedule="exponential", gamma=0.96))


def test_records_round_trip_into_a_table(tmp_path):
    for seed, mm in enumerate((10.0, 12.0, 14.0)):
        results.write_record(record(seed, mm), tmp_path)
    results.write_record(record(0, 20.0, variant="baseline"), tmp_path)
    results.write_record(record(0, 99.0, profile="smoke"), tmp_path)   # other profile: filtered out
    results.write_record(record(1, 13.0), tmp_path)                      # re-run of seed 1 replaces it
    loaded = results.load_records(tmp_path, profile="book")
    assert len(loaded) == 4 and loaded[0]["recipe"]["gamma"] == 0.96
    rows = results.summarize(loaded, by=("variant",))
    full = next(r for r in rows if r["variant"] == "full")
    assert full["mean"] == pytest.approx(37 / 3) and full["n"] == 3 and full["seeds"] == [0, 1, 2]
    assert full["std"] == pytest.approx(math.sqrt(((10 - 37 / 3) ** 2 + (13 - 37 / 3) ** 2 + (14 - 37 / 3) ** 2) / 2))
    baseline = next(r for r in rows if r["variant"] == "baseline")
    assert baseline["std"] is None
    table = results.format_table(rows, by=("variant",))
    assert table.splitlines()[0] == "| variant | mean error (mm) |"
    assert "| full | 12.33 ± 2.08 (n=3) |" in table and "| baseline | 20.00 (n=1) |" in table
    assert [r["variant"] for r in results.load_records(tmp_path, variant="baseline")] == ["baseline"]
    val_rows = results.summarize(loaded, by=("variant",), metric="best_val.mean_error_mm")
    assert next(r for r in val_rows if r["variant"] == "baseline")["mean"] == 19.0


def test_record_contents(tmp_path):
    rec = record(0, 10.0)
    path = results.write_record(rec, tmp_path)
    assert path.name == "crossinfonet__crossinfonet__full__synthetic__nyu__book__seed0.json"
    on_disk = json.loads(path.read_text())
    for key in ("versions", "git", "device", "wall_s", "epochs", "final_val", "best_val", "test", "history"):
        assert key in on_disk
    assert on_disk["epochs"] == 2 and on_disk["versions"]["torch"]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


def test_smoke_records_never_go_to_the_committed_folder(monkeypatch):
    monkeypatch.delenv("HANDLIB_RESULTS_DIR", raising=False)
    assert results.results_dir("smoke") != results.REPO_ROOT / "data" / "results"
    assert results.results_dir("book") == results.REPO_ROOT / "data" / "results"
    monkeypatch.setenv("HANDLIB_RESULTS_DIR", "/somewhere")
    assert str(results.results_dir("book")) == "/somewhere"


def test_bad_records_and_filters_name_the_problem(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        results.load_records(tmp_path)
    (tmp_path / "broken.json").write_text(json.dumps({"schema_version": 1, "model": "x"}))
    with pytest.raises(ValueError, match="broken.json lacks field"):
        results.load_records(tmp_path)
    with pytest.raises(ValueError, match="unknown record filter"):
        results.load_records(tmp_path, modle="x")
    with pytest.raises(KeyError, match="no metric 'test.pck'"):
        results.summarize([record(0, 1.0)], metric="test.pck")
    assert results.load_records(tmp_path / "missing") == []


def test_git_state_names_code_changes_not_the_runs_own_records(tmp_path):
    import subprocess

    from handlib.results import git_state

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "record.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.email=a@b", "-c", "user.name=t", "commit", "-qm", "init")
    (tmp_path / "data" / "record.json").write_text('{"new": 1}')       # a run writing its record
    assert git_state(tmp_path)["dirty"] is False and "diff_sha256" not in git_state(tmp_path)
    (tmp_path / "code.py").write_text("x = 2\n")
    state = git_state(tmp_path)
    assert state["dirty"] is True and len(state["diff_sha256"]) == 16
