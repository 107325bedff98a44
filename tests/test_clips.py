"""Clips: T consecutive frames stacked on a time axis; real clips never cross a sequence boundary,
capped splits keep whole windows, synthetic clips move smoothly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from handlib.data import icvl, msra, nyu
from handlib.datasets import ClipDataset, build_datasets, window_starts
from handlib.geometry import get_camera, uvd_to_xyz
from handlib.profiles import Profile
from test_data_loaders import hand_frames, save_png16

TINY = Profile("smoke", train_frames=0, val_frames=2, test_frames=0, epochs=1, batch_size=2, seeds=(0,),
               image_size=32)


def frames_in_chunks(n, j, cam, seed, **kwargs):
    """hand_frames for n frames, made a few at a time (the disk renderer is (B, H, W, J) in memory)."""
    parts = [hand_frames(min(4, n - i), j, cam, seed=seed + i, **kwargs) for i in range(0, n, 4)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def write_icvl(root, train_names, test_counts=(3, 3)):
    """A tiny ICVL folder: ``train_names`` under Training/, test_seq_1/2 with ``test_counts`` frames."""
    cam = get_camera("icvl")
    uvd, depth = frames_in_chunks(len(train_names) + sum(test_counts), 16, cam, seed=10)
    for name, d in zip(train_names, depth):
        save_png16(root / "Training" / "Depth" / name, d)
    lines = [n + " " + " ".join(f"{v:.3f}" for v in u.reshape(-1)) for n, u in zip(train_names, uvd)]
    (root / "Training" / "labels.txt").write_text("\n".join(lines) + "\n")
    k = len(train_names)
    for seq, count in zip(icvl.TEST_SEQUENCES, test_counts):
        rows = []
        for i in range(count):
            name = f"{seq}/image_{i:04d}.png"
            save_png16(root / "Testing" / "Depth" / name, depth[k])
            rows.append(name + " " + " ".join(f"{v:.3f}" for v in uvd[k].reshape(-1)))
            k += 1
        (root / "Testing" / f"{seq}.txt").write_text("\n".join(rows) + "\n")
    return uvd


# Three training folders; the third skips image 2 (a missing frame ends a sequence too).
ICVL_TRAIN = ([f"201403121135/image_{i:04d}.png" for i in range(5)]
              + [f"201403121140/image_{i:04d}.png" for i in range(4)]
              + [f"201403121145/image_{i:04d}.png" for i in (0, 1, 3, 4, 5)])
ICVL_SEQUENCES = [(0, 5), (5, 9), (9, 11), (11, 14)]


@pytest.fixture(scope="module")
def icvl_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("icvl")
    write_icvl(root, ICVL_TRAIN)
    return root


def check_clips(clips, frames, length):
    """Every clip: frames start, start+1, ... inside one sequence of ``frames``, labels in that order."""
    bounds = frames.sequences()
    for i in range(len(clips)):
        clip = clips[i]
        start = int(clip["start"])
        assert clip["frame"].tolist() == list(range(start, start + length))
        lo, hi = bounds[int(clip["sequence"])]
        assert lo <= start and start + length <= hi
        assert clip["depth"].shape == (length, 1, 32, 32)
        assert clip["joints"].shape == (length, frames.convention.num_joints, 3)
        assert clip["com"].shape == (length, 3) and clip["cube"].shape == (length, 3)
        assert np.allclose(clip["joints_uvd"].numpy(), frames.joints_uvd[start:start + length], atol=1e-3)
        assert int(clip["index"]) == i


def test_icvl_sequences_by_folder_and_numbering(icvl_root):
    train = icvl.ICVLDataset(icvl_root, "train", size=32)
    assert train.sequences() == ICVL_SEQUENCES
    test = icvl.ICVLDataset(icvl_root, "test", size=32)
    assert test.sequences() == [(0, 3), (3, 6)]          # test_seq_1, test_seq_2
    assert window_starts(test.sequences(), 2) == [0, 1, 3, 4]


def test_icvl_clips_stay_inside_sequences(icvl_root):
    splits = build_datasets("icvl", TINY, "icvl", 32, 0, str(icvl_root), clip_length=2)
    train_full = splits["train"].frames
    # Windows of 2: 0-3, 5-7, 9, 11-12; validation = the last 2 (11, 12), training ends before frame 11.
    assert splits["val"].starts == [11, 12]
    assert splits["train"].starts == [0, 1, 2, 3, 5, 6, 7, 9]
    assert splits["test"].starts == [0, 1, 3, 4]
    for split in ("train", "val", "test"):
        check_clips(splits[split], splits[split].frames, 2)
    assert int(splits["test"][2]["sequence"]) == 1
    batch = torch.utils.data.default_collate([splits["train"][i] for i in range(3)])
    assert batch["depth"].shape == (3, 2, 1, 32, 32)
    with pytest.raises(ValueError, match="does not fit in sequence 0"):
        ClipDataset(train_full, [4], 2)                   # frames 4, 5 straddle two folders


def test_capped_clips_keep_adjacency(icvl_root):
    capped = Profile("smoke", train_frames=3, val_frames=1, test_frames=2, epochs=1, batch_size=2,
                     seeds=(0,), image_size=32)
    splits = build_datasets("icvl", capped, "icvl", 32, 0, str(icvl_root), clip_length=3)
    # Windows of 3: 0, 1, 2 | 5, 6 | 11; val = [11]; training windows 0, 1, 2, 5, 6 -> 3 evenly spaced starts.
    assert splits["val"].starts == [11]
    assert splits["train"].starts == [0, 1, 5]
    assert len(splits["test"]) == 2
    for split in ("train", "val", "test"):
        check_clips(splits[split], splits[split].frames, 3)


def test_too_long_clips_are_refused(icvl_root):
    with pytest.raises(ValueError, match="0 windows of 6 consecutive frames"):
        build_datasets("icvl", TINY, "icvl", 32, 0, str(icvl_root), clip_length=6)
    with pytest.raises(ValueError, match="clip_length"):
        build_datasets("icvl", TINY, "icvl", 32, 0, str(icvl_root), clip_length=0)


def test_msra_sequences_are_gesture_folders(tmp_path, monkeypatch):
    cam = get_camera("msra")
    uvd, depth = frames_in_chunks(12, 21, cam, seed=20, depth_mm=350.0)
    xyz = uvd_to_xyz(torch.from_numpy(uvd), cam).numpy()
    k = 0
    for subject, gesture, count in (("P0", "1", 3), ("P1", "1", 4), ("P1", "5", 3), ("P2", "I", 2)):
        folder = tmp_path / subject / gesture
        folder.mkdir(parents=True)
        stored = xyz[k:k + count].copy()
        stored[..., 2] *= -1
        body = "\n".join(" ".join(f"{v:.4f}" for v in f.reshape(-1)) for f in stored)
        (folder / "joint.txt").write_text(f"{count}\n{body}\n")
        for i in range(count):
            msra.write_bin(folder / f"{i:06d}_depth.bin", depth[k + i])
        k += count
    ds = msra.MSRADataset(tmp_path, size=32)
    assert ds.sequences() == [(0, 3), (3, 7), (7, 10), (10, 12)]
    monkeypatch.setitem(msra.FAULTY_FRAMES, ("P1", "1"), (1,))
    assert msra.MSRADataset(tmp_path, size=32, skip_faulty=True).sequences() == [(0, 3), (3, 4), (4, 6),
                                                                                 (6, 9), (9, 11)]
    splits = build_datasets("msra", TINY, "msra", 32, 0, str(tmp_path), clip_length=2)
    # train = P1, P2 (frames 0-3 P1/1, 4-6 P1/5, 7-8 P2/I); test = P0.
    assert splits["train"].frames.sequences() == [(0, 4), (4, 7), (7, 9)]
    assert splits["val"].starts == [5, 7] and splits["train"].starts == [0, 1, 2]
    assert splits["test"].starts == [0, 1]
    for split in ("train", "val", "test"):
        check_clips(splits[split], splits[split].frames, 2)


def test_nyu_test_clips_do_not_cross_subjects(tmp_path):
    from scipy.io import savemat

    n = nyu.SUBJECT_A_TEST_FRAMES + 4
    full = np.full((1, n, 36, 3), 300.0)
    (tmp_path / "test").mkdir()
    savemat(tmp_path / "test" / "joint_data.mat", {"joint_uvd": full})
    save_png16(tmp_path / "test" / "depth_1_0000001.png", np.zeros((4, 4)))  # only the first is checked
    test = nyu.NYUDataset(tmp_path, "test")
    a = nyu.SUBJECT_A_TEST_FRAMES
    assert test.sequences() == [(0, a), (a, n)]
    starts = window_starts(test.sequences(), 4)
    assert a - 4 in starts and a - 3 not in starts and a in starts
    assert ClipDataset(test, [a - 4, a], 4).sequence_ids == [0, 1]
    with pytest.raises(ValueError, match="does not fit"):
        ClipDataset(test, [a - 2], 4)


def test_synthetic_clips_are_smooth(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDLIB_CACHE_DIR", str(tmp_path))
    profile = Profile("smoke", train_frames=4, val_frames=2, test_frames=2, epochs=1, batch_size=2,
                      seeds=(0,), image_size=32)
    splits = build_datasets("synthetic", profile, "nyu", 32, 0, clip_length=6, part_labels=True)
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "val": 2, "test": 2}
    clip = splits["train"][1]
    assert clip["depth"].shape == (6, 1, 32, 32) and clip["joints_xyz"].shape == (6, 14, 3)
    assert clip["parts"].shape == (6, 32, 32) and int(clip["parts"].max()) > 0
    assert clip["frame"].tolist() == list(range(6)) and int(clip["sequence"]) == 1 and int(clip["start"]) == 0
    xyz = torch.stack([splits["train"][i]["joints_xyz"] for i in range(4)])      # (clips, T, J, 3)
    step = (xyz[:, 1:] - xyz[:, :-1]).norm(dim=-1).mean()
    frames = build_datasets("synthetic", profile, "nyu", 32, 0)["train"]
    random = torch.stack([frames[i]["joints_xyz"] for i in range(4)])
    jump = (random[1:] - random[:-1]).norm(dim=-1).mean()
    assert 0 < step < 0.2 * jump, (step, jump)


def test_part_labels_only_where_rendered(tmp_path):
    with pytest.raises(ValueError, match="'nyu' \\(NYU\\) has no per-pixel part labels.*synthetic"):
        build_datasets("nyu", TINY, "nyu", 32, 0, str(tmp_path), part_labels=True)


def write_nyu_split(root, split, n, seed):
    """A tiny NYU split in the native format (joint_data.mat with 36 joints, depth_1_*.png)."""
    from PIL import Image
    from scipy.io import savemat

    uvd, depth = frames_in_chunks(n, 14, get_camera("nyu"), seed=seed)
    full = np.zeros((1, n, 36, 3))
    full[0][:, nyu.EVAL_JOINT_IDS] = uvd
    (root / split).mkdir(parents=True)
    savemat(root / split / "joint_data.mat", {"joint_uvd": full, "joint_xyz": full})
    for i in range(n):
        Image.fromarray(nyu.encode_depth(depth[i])).save(root / split / f"depth_1_{i + 1:07d}.png")


def test_nyu_as_cadstn_reads_it(tmp_path, monkeypatch):
    """Non-overlapping training clips; the test sequences concatenated into 16-frame clips, one straddling
    the subject boundary, the last padded, and the padding never scored."""
    from torch import nn

    from handlib.datasets import FramesOfClips
    from handlib.train import evaluate, predict_xyz

    monkeypatch.setattr(nyu, "SUBJECT_A_TEST_FRAMES", 20)          # test_1: frames 0-19, test_2: 20-32
    write_nyu_split(tmp_path, "train", 48, seed=1)
    write_nyu_split(tmp_path, "test", 33, seed=2)
    profile = Profile("smoke", train_frames=0, val_frames=1, test_frames=0, epochs=1, batch_size=2,
                      seeds=(0,), image_size=32)
    splits = build_datasets("nyu", profile, "nyu", 32, 0, str(tmp_path), clip_length=16, clip_stride=16,
                            test_clips="concatenated")
    assert splits["train"].starts == [0, 16] and splits["val"].starts == [32]
    test = splits["test"]
    assert test.frames.sequences() == [(0, 20), (20, 33)] and len(test) == 3
    assert test[1]["frame"].tolist() == list(range(16, 32)) and bool(test[1]["valid"].all())   # straddles
    last = test[2]
    assert last["valid"].tolist() == [True] + [False] * 15 and last["frame"].tolist() == [32] * 16
    assert torch.equal(last["depth"][5], last["depth"][0])                         # padded by repetition

    oracle = nn.Linear(1, 1)          # predicts the truth: what is scored is exactly the 33 real frames
    pred, truth = predict_xyz(oracle, lambda out: out, test, batch_size=2, forward=lambda net, b: b["joints"])
    assert pred.shape == (33, 14, 3)
    expected = torch.stack([test.frames[i]["joints_xyz"] for i in range(33)])
    assert torch.allclose(truth, expected) and torch.allclose(pred, truth, atol=1e-3)
    assert evaluate(oracle, lambda out: out, test, batch_size=2, forward=lambda net, b: b["joints"])["frames"] == 33
    frames = FramesOfClips(test)                                  # the frame networks see the same 33
    assert len(frames) == 33 and int(frames[32]["clip"]) == 2 and int(frames[32]["step"]) == 0
    assert torch.equal(frames[17]["joints_xyz"], expected[17])
    # A capped test split keeps whole clips (evenly spaced), the padded last one among them.
    capped = build_datasets("nyu", Profile("smoke", train_frames=0, val_frames=1, test_frames=2, epochs=1, batch_size=2,
                                           seeds=(0,), image_size=32),
                            "nyu", 32, 0, str(tmp_path), clip_length=16, clip_stride=16, test_clips="concatenated")["test"]
    assert len(capped) == 2 and type(capped.dataset).__name__ == "PaddedClips"
    capped = torch.utils.data.Subset(capped.dataset, [0, 2])            # a cap that keeps the padded clip
    capped_frames = FramesOfClips(capped)
    assert len(capped_frames) == 17 and int(capped_frames[16]["clip"]) == 2
    assert torch.equal(capped_frames[16]["joints_xyz"], expected[32])
    assert predict_xyz(oracle, lambda out: out, capped, batch_size=2, forward=lambda net, b: b["joints"])[0].shape[0] == 17
    with pytest.raises(ValueError, match="test_clips"):
        build_datasets("nyu", profile, "nyu", 32, 0, str(tmp_path), clip_length=16, test_clips="padded")
