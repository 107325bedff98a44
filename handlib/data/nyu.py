"""NYU Hand Pose (Tompson et al., 2014), Kinect 1, the 14 evaluation joints (as DeepPrior++'s
``NYUImporter`` and the awesome-hand-pose-estimation evaluation use them).

Layout: ``<root>/{train,test}/joint_data.mat`` and ``depth_1_NNNNNNN.png`` (1-based, 7 digits).
Depth = (G << 8) | B of the 3-channel PNG. Test frames 0..2439 are subject A, the rest subject B.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from handlib.data.base import (CroppedDepthDataset, DatasetFormatError, check_first_frame, check_layout,
                               read_centres, read_png)
from handlib.geometry import get_camera

EVAL_JOINT_IDS = (0, 3, 6, 9, 12, 15, 18, 21, 24, 25, 27, 30, 31, 32)
SUBJECT_A_TEST_FRAMES = 2440
TRAIN_FRAMES, TEST_FRAMES = 72757, 8252


def decode_depth(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) mm: green is the high byte, blue the low byte."""
    return (rgb[..., 1].astype(np.int32) << 8 | rgb[..., 2].astype(np.int32)).astype(np.float32)


def encode_depth(depth_mm: np.ndarray) -> np.ndarray:
    """Inverse of :func:`decode_depth` (red left 0), for fixtures and round trips."""
    d = np.asarray(depth_mm).astype(np.uint16)
    return np.stack((np.zeros_like(d, np.uint8), (d >> 8).astype(np.uint8), (d & 255).astype(np.uint8)), -1)


def load_joint_data(path) -> np.ndarray:
    """``joint_data.mat`` -> (N, 14, 3) uvd of Kinect 1's evaluation joints."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path}: joint_data.mat not found")
    mat = loadmat(path)
    if "joint_uvd" not in mat:
        raise DatasetFormatError(f"{path}: no 'joint_uvd' array (keys: {sorted(k for k in mat if not k.startswith('__'))})")
    uvd = np.asarray(mat["joint_uvd"], dtype=np.float64)
    if uvd.ndim != 4 or uvd.shape[2] != 36 or uvd.shape[3] != 3:
        raise DatasetFormatError(f"{path}: joint_uvd has shape {uvd.shape}, expected (kinects, N, 36, 3)")
    return uvd[0][:, EVAL_JOINT_IDS]


class NYUDataset(CroppedDepthDataset):
    """NYU ``split`` ('train' | 'test'); ``subject`` 'A' or 'B' restricts the test set.

    Cube: CrossInfoNet's — test 250 mm; train one of {250, 260, ..., 300} per frame, drawn once
    from ``seed``. CoM: ``centres`` (V2V refined centres, world mm) when given, else the CoM of the
    pixels in a crop around the palm joint (index 13)."""

    def __init__(self, root, split: str = "test", *, subject: str | None = None, cube=None,
                 centres=None, size: int = 96, seed: int = 0, **kwargs):
        if split not in ("train", "test"):
            raise ValueError(f"NYU split {split!r}; expected 'train' or 'test'")
        root = check_layout("nyu", root, (f"{split}/", f"{split}/joint_data.mat"))
        folder = root / split
        joints = load_joint_data(folder / "joint_data.mat")
        frames = np.arange(len(joints))
        n = len(joints)
        if cube is None and split == "train":
            rng = np.random.default_rng(seed)
            cube = (250 + 10 * rng.integers(0, 6, n)).astype(np.float64)
        cube = np.asarray(250.0 if cube is None else cube, dtype=np.float64)
        cube = np.broadcast_to(cube.reshape(-1, 1) if cube.ndim == 1 else cube, (n, 3))
        cam = get_camera("nyu")
        centres_uvd = None if centres is None else read_centres(centres, cam, frames=n)
        if subject is not None:
            if split != "test" or subject not in ("A", "B"):
                raise ValueError(f"NYU subject {subject!r} only exists for split='test' ('A' or 'B')")
            frames = frames[:SUBJECT_A_TEST_FRAMES] if subject == "A" else frames[SUBJECT_A_TEST_FRAMES:]
        self.frame_ids = frames
        # Sequences: training is subject A; the test set is subject A, then subject B (CrossInfoNet code).
        self.frame_numbers = frames.tolist()
        self.sequence_keys = ["A" if split == "train" or i < SUBJECT_A_TEST_FRAMES else "B" for i in frames]
        paths = [folder / f"depth_1_{i + 1:07d}.png" for i in frames]
        check_first_frame("nyu", root, paths, f"{split}/joint_data.mat")
        super().__init__(paths, joints[frames], cam, "nyu", cube[frames], size=size,
                         centres=None if centres_uvd is None else centres_uvd[frames],
                         com_joint=13, **kwargs)

    @classmethod
    def for_split(cls, root, split: str, *, size: int = 96, seed: int = 0) -> "NYUDataset":
        return cls(root, split, size=size, seed=seed)

    def load_depth(self, index: int) -> np.ndarray:
        return decode_depth(read_png(self.depth_paths[index], channels=3))
