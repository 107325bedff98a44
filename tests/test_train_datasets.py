"""build_datasets: the three splits of a profile, disjoint synthetic streams, clear errors for real data."""
from __future__ import annotations

import pytest
import torch

from handlib.datasets import build_datasets, joint_statistics
from handlib.profiles import Profile
from handlib.sample import check_sample

TINY = Profile("smoke", train_frames=6, val_frames=3, test_frames=2, epochs=1, batch_size=2, seeds=(0,),
               image_size=32)


def test_synthetic_splits_are_sized_and_disjoint(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDLIB_CACHE_DIR", str(tmp_path))
    splits = build_datasets("synthetic", TINY, "nyu", 32, 0)
    assert {k: len(v) for k, v in splits.items()} == {"train": 6, "val": 3, "test": 2}
    check_sample(splits["val"][0], size=32, num_joints=14)
    assert not torch.equal(splits["train"][0]["joints"], splits["val"][0]["joints"])
    assert not torch.equal(splits["val"][0]["joints"], splits["test"][0]["joints"])


def test_real_data_errors_name_the_problem():
    with pytest.raises(ValueError, match="needs data_root"):
        build_datasets("nyu", TINY, "nyu", 32, 0)
    with pytest.raises(ValueError, match="convention 'nyu', not 'msra'"):
        build_datasets("nyu", TINY, "msra", 32, 0, data_root="/nowhere")
    with pytest.raises(ValueError, match="HANDS2017 test labels"):
        build_datasets("hands17", TINY, "hands17", 32, 0, data_root="/nowhere")
    with pytest.raises(ValueError, match="unknown dataset"):
        build_datasets("coco", TINY, "nyu", 32, 0)


def test_joint_statistics_are_the_mean_and_spread_of_evenly_spaced_frames():
    frames = [{"joints": torch.full((14, 3), float(i))} for i in range(10)]
    mean, std = joint_statistics(frames)
    assert torch.allclose(mean, torch.full((14, 3), 4.5))
    assert torch.allclose(std, torch.full((14, 3), torch.arange(10.0).std().item()))
    mean, _ = joint_statistics(frames, max_frames=5)           # frames 0, 2, 4, 6, 8
    assert torch.allclose(mean, torch.full((14, 3), 4.0))
    with pytest.raises(ValueError, match="at least 2 frames"):
        joint_statistics(frames[:1])


def test_real_like_splits_are_the_real_like_domain(tmp_path, monkeypatch):
    from handlib.dataset_registry import dataset_names, get_dataset

    monkeypatch.setenv("HANDLIB_CACHE_DIR", str(tmp_path))
    assert get_dataset("real-like").domain == "real-like" and get_dataset("synthetic").domain == "synthetic"
    assert "real-like" in dataset_names("synthetic") and "real-like" not in dataset_names("part_labels")
    splits = build_datasets("real-like", TINY, "nyu", 32, 0)
    clean = build_datasets("synthetic", TINY, "nyu", 32, 0)
    assert {k: len(v) for k, v in splits.items()} == {"train": 6, "val": 3, "test": 2}
    assert all(split.domain == "real-like" for split in splits.values())
    sample = splits["train"][0]
    check_sample(sample, size=32, num_joints=14)
    assert not sample["parts_trainable"]                      # its part labels never train anything
    # another stream than the synthetic dataset's (the domain keys every frame): other poses
    assert not torch.equal(sample["joints"], clean["train"][0]["joints"])
    clips = build_datasets("real-like", TINY, "nyu", 32, 0, clip_length=2)
    assert clips["test"].domain == "real-like" and clips["test"][0]["depth"].shape[0] == 2
    with pytest.raises(ValueError, match="no per-pixel part labels"):
        build_datasets("real-like", TINY, "nyu", 32, 0, part_labels=True)
