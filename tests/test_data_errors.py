"""Errors that teach: a wrong data root names the folder and the dataset's expected layout; a malformed
prediction file says what a valid one looks like; the CLI prints them as ``error: ...`` with exit code 2."""
import os
import subprocess
import sys

import numpy as np
import pytest
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
from handlib import train_cli
from handlib.cli import main
from handlib.data import hands17, icvl, msra, nyu
from handlib.data.base import DATASET_TITLES, EXPECTED_LAYOUT, DatasetFormatError
from handlib.data.label_files import LabelFileError, expected_format, read_label_file

LOADERS = {
    "nyu": lambda root: nyu.NYUDataset(root, "train"),
    "icvl": lambda root: icvl.ICVLDataset(root, "train"),
    "msra": lambda root: msra.MSRADataset(root),
    "hands17": lambda root: hands17.Hands17Dataset(root),
}


def layout_error(dataset, root, build=None) -> str:
    with pytest.raises(DatasetFormatError) as info:
        (build or LOADERS[dataset])(root)
    message = str(info.value)
    assert message.startswith(f"{DATASET_TITLES[dataset]} data root {root} ")
    assert message.endswith(f"\n  expected layout: {EXPECTED_LAYOUT[dataset]}")
    return message


def test_one_layout_per_real_dataset():
    assert set(EXPECTED_LAYOUT) == set(DATASET_TITLES) == set(LOADERS) == set(train_cli.REAL_DATASETS)


@pytest.mark.parametrize("dataset", sorted(LOADERS))
def test_missing_root(dataset, tmp_path):
    assert "does not exist" in layout_error(dataset, tmp_path / "nonexistent")


@pytest.mark.parametrize("dataset", sorted(LOADERS))
def test_root_is_a_file(dataset, tmp_path):
    (tmp_path / "file").write_text("x")
    assert "is a file, not a folder" in layout_error(dataset, tmp_path / "file")


@pytest.mark.parametrize("dataset,first_missing", [
    ("nyu", "exists but has no folder train/"),
    ("icvl", "exists but has no folder Training/"),
    ("msra", "exists but has none of the subject folders P0/, P1/"),
    ("hands17", "exists but has no folder training/"),
])
def test_empty_root(dataset, first_missing, tmp_path):
    assert first_missing in layout_error(dataset, tmp_path)


def test_nyu_missing_items(tmp_path):
    from scipy.io import savemat

    (tmp_path / "train").mkdir()
    assert "exists but has no file train/joint_data.mat" in layout_error("nyu", tmp_path)
    savemat(tmp_path / "train" / "joint_data.mat", {"joint_uvd": np.full((1, 2, 36, 3), 300.0)})
    message = layout_error("nyu", tmp_path)
    assert "has no train/depth_1_0000001.png (the first frame listed in train/joint_data.mat)" in message
    test = layout_error("nyu", tmp_path, lambda root: nyu.NYUDataset(root, "test"))
    assert "has no folder test/" in test


def test_icvl_missing_items(tmp_path):
    (tmp_path / "Training").mkdir()
    assert "has no file Training/labels.txt" in layout_error("icvl", tmp_path)
    (tmp_path / "Training" / "labels.txt").write_text("a/image_0000.png " + " 1" * 48 + "\n")
    assert "has no folder Training/Depth/" in layout_error("icvl", tmp_path)
    (tmp_path / "Training" / "Depth").mkdir()
    assert "has no Training/Depth/a/image_0000.png (the first frame listed in Training/labels.txt)" \
        in layout_error("icvl", tmp_path)
    (tmp_path / "Testing").mkdir()
    (tmp_path / "Testing" / "test_seq_1.txt").write_text("")
    test = layout_error("icvl", tmp_path, lambda root: icvl.ICVLDataset(root, "test"))
    assert "has no file Testing/test_seq_2.txt" in test
    (tmp_path / "Training" / "Depth").rmdir()
    (tmp_path / "Training" / "Depth").write_text("not a folder")
    assert "its Training/Depth is not a folder" in layout_error("icvl", tmp_path)


def test_msra_missing_items(tmp_path):
    (tmp_path / "P0").mkdir()
    assert "its P0/ holds no gesture folder" in layout_error("msra", tmp_path)
    (tmp_path / "P0" / "5").mkdir()
    assert "has no file P0/5/joint.txt" in layout_error("msra", tmp_path)
    (tmp_path / "P0" / "5" / "joint.txt").write_text("1\n" + " 1" * 63 + "\n")
    assert "has no P0/5/000000_depth.bin (the first frame listed in P0/5/joint.txt)" in layout_error("msra", tmp_path)
    (tmp_path / "P0" / "5" / "joint.txt").write_text("0\n")
    assert "joint.txt files list no frames" in layout_error("msra", tmp_path)


def test_hands17_missing_items(tmp_path):
    (tmp_path / "training").mkdir()
    assert "has no file training/Training_Annotation.txt" in layout_error("hands17", tmp_path)
    (tmp_path / "training" / "Training_Annotation.txt").write_text("image_D00000001.png" + " 1" * 63 + "\n")
    assert "has no folder training/images/" in layout_error("hands17", tmp_path)
    (tmp_path / "training" / "images").mkdir()
    assert "has no training/images/image_D00000001.png" in layout_error("hands17", tmp_path)


@pytest.mark.parametrize("dataset", ["nyu", "icvl", "msra"])
def test_train_cli_reports_the_layout(dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "nonexistent"
    code = main(["train", "crossinfonet", "--dataset", dataset, "--data-root", str(root), "--profile",
                 "smoke", "--device", "cpu", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {DATASET_TITLES[dataset]} data root {root} does not exist\n")
    assert EXPECTED_LAYOUT[dataset] in err


def cli(*argv, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "handlib", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_train_missing_root_subprocess(tmp_path):
    """The issue's command, as a user runs it: two lines, exit code 2, no traceback."""
    proc = cli("train", "crossinfonet", "--dataset", "nyu", "--data-root", "/nonexistent", "--profile", "smoke",
               "--device", "cpu", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr == f"error: NYU data root /nonexistent does not exist\n  expected layout: {EXPECTED_LAYOUT['nyu']}\n"


# --- prediction files ----------------------------------------------------------------------------

def test_expected_format_line():
    assert expected_format(14, 8252, "nyu") == ("expected one frame per line with 3*J whitespace-separated "
                                                "numbers (u v d per joint; NYU: 14 joints = 42 numbers, 8252 lines)")
    assert expected_format() == "expected one frame per line with 3*J whitespace-separated numbers (u v d per joint)"
    assert expected_format(16, dataset="icvl").endswith("(u v d per joint; ICVL: 16 joints = 48 numbers)")


@pytest.mark.parametrize("content,problem", [
    ("vm\n", ", line 1: 1 values, expected 42 (14 joints x 3)"),
    (" ".join(["1"] * 42) + "\n" + " ".join(["1"] * 41) + "\n", ", line 2: 41 values, expected 42"),
    ("", ": file is empty"),
    (" ".join(["1"] * 41 + ["x"]) + "\n", ", line 1: non-numeric value 'x'"),
])
def test_label_file_errors_keep_the_problem_and_add_the_format(content, problem, tmp_path):
    path = tmp_path / "pred.txt"
    path.write_text(content)
    with pytest.raises(LabelFileError) as info:
        read_label_file(path, joints=14, dataset="nyu")
    first, second = str(info.value).split("\n")
    assert first.startswith(f"{path}{problem}")
    assert second == "  " + expected_format(14, None, "nyu")


@pytest.fixture
def nyu_ground_truth(monkeypatch):
    """The published NYU test ground truth's shape (8252 frames x 14 joints), without the file."""
    from handlib.data import published

    monkeypatch.setattr(published, "load_ground_truth", lambda dataset: np.zeros((8252, 14, 3)))


@pytest.mark.parametrize("content,problem", [
    ("vm\n", ", line 1: 1 values, expected 42 (14 joints x 3)"),
    (" ".join(["1"] * 42) + "\n", ": 1 frames (lines), expected 8252"),
])
def test_evaluate_cli_explains_the_format(content, problem, nyu_ground_truth, tmp_path, capsys):
    path = tmp_path / "pred.txt"
    path.write_text(content)
    assert main(["evaluate", "nyu", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}{problem}\n  expected one frame per line with 3*J whitespace-separated numbers "
        "(u v d per joint; NYU: 14 joints = 42 numbers, 8252 lines)\n")


def test_evaluate_binary_file_subprocess(tmp_path):
    gt = tmp_path / "gt.txt"
    gt.write_text((" ".join(["1"] * 42) + "\n") * 3)
    pred = tmp_path / "pred.bin"
    pred.write_bytes(bytes(range(256)))
    proc = cli("evaluate", "nyu", str(pred), "--gt", str(gt), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr == (f"error: {pred}: not a text file (expected 42 numbers per line)\n  expected one "
                           "frame per line with 3*J whitespace-separated numbers (u v d per joint; NYU: 14 "
                           "joints = 42 numbers, 3 lines)\n")


def test_evaluate_icvl_sequence_a_hint_stays_on_the_problem_line(monkeypatch, tmp_path, capsys):
    from handlib.data import published

    monkeypatch.setattr(published, "load_ground_truth", lambda dataset: np.zeros((1596, 16, 3)))
    path = tmp_path / "pred.txt"
    path.write_text((" ".join(["1"] * 48) + "\n") * 702)
    assert main(["evaluate", "icvl", str(path)]) == 2
    problem, expected = capsys.readouterr().err.rstrip("\n").split("\n")
    assert problem == (f"error: {path}: 702 frames (lines), expected 1596; 702 lines is ICVL test sequence A "
                       "only: pass --gt with the first 702 lines of the ground truth")
    assert expected == "  " + expected_format(16, 1596, "icvl")
