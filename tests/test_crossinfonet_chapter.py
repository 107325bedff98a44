"""The chapter's ``full``/real-data path: CrossInfoNet trained end to end on NYU in its native format.

A tiny NYU folder (train + test ``joint_data.mat`` and 3-channel PNGs, written as test_data_loaders
does) goes through ``train_and_record`` with the paper's online augmentation, then is resumed.
The sizes are shrunk for the test with a monkeypatched chapter override (seconds on one CPU core).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handlib import checkpoint, profiles
from handlib.data import augment as augment_module
from handlib.data import nyu
from handlib.geometry import get_camera
from handlib.models.crossinfonet import training_augmentation
from handlib.train_cli import train_and_record

from test_data_loaders import hand_frames

TINY_SIZES = {"train_frames": 8, "val_frames": 4, "test_frames": 4, "epochs": 1, "batch_size": 4,
              "seeds": (0,)}


def write_nyu_split(root, split: str, frames: int, seed: int) -> None:
    """``root/split/joint_data.mat`` + ``depth_1_NNNNNNN.png`` as NYU ships them (Kinect 1 only)."""
    from scipy.io import savemat
    uvd, depth = hand_frames(frames, 14, get_camera("nyu"), seed=seed)
    full = np.zeros((3, frames, 36, 3))
    full[0][:, nyu.EVAL_JOINT_IDS] = uvd
    folder = root / split
    folder.mkdir(parents=True)
    savemat(folder / "joint_data.mat", {"joint_uvd": full, "joint_xyz": full})
    for i in range(frames):
        Image.fromarray(nyu.encode_depth(depth[i])).save(folder / f"depth_1_{i + 1:07d}.png")


@pytest.fixture
def tiny_nyu(tmp_path, monkeypatch):
    root = tmp_path / "nyu"
    write_nyu_split(root, "train", 12, seed=0)
    write_nyu_split(root, "test", 4, seed=1)
    monkeypatch.setitem(profiles.CHAPTER_OVERRIDES, "crossinfonet",
                        {**profiles.CHAPTER_OVERRIDES.get("crossinfonet", {}), "smoke": TINY_SIZES})
    return root


def test_crossinfonet_trains_on_native_nyu_with_the_papers_augmentation(tiny_nyu, tmp_path, monkeypatch):
    augmented_batches = []
    original = augment_module.augment_batch

    def spy(batch, *args, **kwargs):
        out = original(batch, *args, **kwargs)
        augmented_batches.append(out)
        return out
    monkeypatch.setattr(augment_module, "augment_batch", spy)

    out = tmp_path / "run"
    record, result, net = train_and_record(
        "crossinfonet", variant="cross_hm", dataset="nyu", data_root=str(tiny_nyu), profile="smoke",
        seed=0, out=out, device="cpu", results_dir=tmp_path / "results", progress=False)
    assert record["dataset"] == "nyu" and record["convention"] == "nyu"
    assert record["extra"]["augmentation"] == "crossinfonet.training_augmentation(nyu)"
    assert record["test"]["frames"] == 4 and math.isfinite(record["test"]["mean_error_mm"])
    assert (tmp_path / "results").is_dir() and {p.name for p in out.iterdir()} >= {"last.pt", "best.pt"}
    # Two training steps of 4 (8 frames, batch 4), each through the augmentation; never validation.
    assert len(augmented_batches) == 2
    assert all(b["depth"].shape == (4, 1, 96, 96) and b["aug_mode"].shape == (4,) for b in augmented_batches)
    assert all(math.isfinite(v) for v in result.history[0]["train"].values())
    assert {"L_ht", "L_bp", "L_bf", "L_a", "L_ep", "L_ef"} <= set(result.history[0]["train"])
    assert checkpoint.load(out / "last.pt")["meta"]["augmentation"] == record["extra"]["augmentation"]
    assert record["extra"]["model_init"] == "code"      # TINY_SIZES names no output_init

    # A finished run resumes with no epochs left: weights loaded, same test error, no new steps.
    again, resumed, _ = train_and_record(
        "crossinfonet", variant="cross_hm", dataset="nyu", data_root=str(tiny_nyu), profile="smoke",
        seed=0, out=out, device="cpu", resume=True, write_results=False, progress=False)
    assert resumed.global_step == result.global_step and len(augmented_batches) == 2
    assert again["test"]["mean_error_mm"] == pytest.approx(record["test"]["mean_error_mm"], rel=1e-5)

    # Resuming the augmented run without augmentation would change what is learnt: refused.
    with pytest.raises(checkpoint.CheckpointError, match="augmentation"):
        train_and_record(
            "crossinfonet", variant="cross_hm", dataset="nyu", data_root=str(tiny_nyu),
            profile="smoke", seed=0, out=out, device="cpu", resume=True, augment=False,
            write_results=False, progress=False)

    # So would resuming it with the output layers started from the targets' statistics.
    monkeypatch.setitem(profiles.CHAPTER_OVERRIDES["crossinfonet"], "smoke",
                        {**TINY_SIZES, "output_init": "target_stats"})
    with pytest.raises(checkpoint.CheckpointError, match="model_init"):
        train_and_record(
            "crossinfonet", variant="cross_hm", dataset="nyu", data_root=str(tiny_nyu),
            profile="smoke", seed=0, out=out, device="cpu", resume=True, write_results=False,
            progress=False)


def test_augmentation_only_for_real_data_and_refused_when_absent():
    from handlib.errors import UsageError
    assert training_augmentation("synthetic") is None
    assert callable(training_augmentation("nyu"))
    with pytest.raises(UsageError, match="no online augmentation for dataset 'synthetic'"):
        train_and_record("crossinfonet", dataset="synthetic", profile="smoke", augment=True,
                         progress=False)


def test_chapter_runs_end_to_end_on_native_nyu(tmp_path):
    """The whole chapter, smoke profile, on a tiny NYU folder: real-data loading, the paper's
    augmentation in all four variants' training, tables and figures on real test frames."""
    root = tmp_path / "nyu"
    train_frames = profiles.get_profile("smoke", "crossinfonet").val_frames + 40   # 40 left to train on
    write_nyu_split(root, "train", train_frames, seed=0)
    write_nyu_split(root, "test", 16, seed=1)
    out = tmp_path / "executed"
    env = {**os.environ, "HANDLIB_RESULTS_DIR": str(tmp_path / "results")}
    proc = subprocess.run(
        [sys.executable, "-m", "handlib", "book", "run", "--profile", "smoke", "--chapter", "crossinfonet",
         "--dataset", "nyu", "--data-root", str(root), "--out", str(out)],
        cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    notebook = json.loads(next(out.glob("*crossinfonet.ipynb")).read_text())
    text = "".join("".join(o.get("text", "")) for c in notebook["cells"] if c["cell_type"] == "code"
                   for o in c.get("outputs", []))
    assert "profile 'smoke': nyu data, 40 training" in text
    assert not any(o.get("output_type") == "error" for c in notebook["cells"] for o in c.get("outputs", []))
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert sorted(r["variant"] for r in records) == ["base", "base_hm", "cross", "cross_hm"]
    assert all(r["dataset"] == "nyu" and r["test"]["frames"] == 16 for r in records)
    assert all(r["extra"]["augmentation"] == "crossinfonet.training_augmentation(nyu)" for r in records)
