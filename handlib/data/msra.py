"""MSRA 2015 (Sun et al.): per-frame ``.bin`` depth + ``joint.txt`` per gesture, as DeepPrior++'s
``MSRA15Importer`` reads them.

Layout ``<root>/P0..P8/<gesture>/joint.txt`` and ``NNNNNN_depth.bin``. A ``.bin`` is 6 little-endian
int32 (width, height, left, top, right, bottom; right/bottom exclusive) then float32 depth of the
box, row-major. ``joint.txt``: frame count, then 21 x (x y z) per line with z stored negative.
Evaluation is leave-one-subject-out over the 9 subjects.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from handlib.data.base import (CroppedDepthDataset, DatasetFormatError, check_first_frame, check_layout,
                               layout_error, numbers_line)
from handlib.geometry import get_camera, xyz_to_uvd

SUBJECTS = tuple(f"P{i}" for i in range(9))
GESTURES = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "I", "IP", "L", "MP", "RP", "T", "TIP", "Y")
# DeepPrior / CrossInfoNet MSRA15Importer docstring: frames with faulty annotations.
FAULTY_FRAMES = {
    ("P2", "TIP"): (172, 173, 174),
    ("P2", "MP"): (173, 174, 175, 345, 346, 347, 348, 349, 350, 351, 352, 353, 354, 356, 359, 360),
    ("P3", "T"): (120, 489),
    ("P8", "4"): (168,),
}
CROP_JOINT = 9   # CrossInfoNet crops around the ring MCP, then recomputes the CoM (docom)


def read_joint_file(path) -> np.ndarray:
    """``joint.txt`` -> (N, 21, 3) xyz in mm with z made positive."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path}: joint.txt not found")
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    try:
        n = int(lines[0].split()[0])
    except (IndexError, ValueError):
        raise DatasetFormatError(f"{path}, line 1: expected the frame count") from None
    if len(lines) - 1 != n:
        raise DatasetFormatError(f"{path}: header says {n} frames but {len(lines) - 1} lines follow")
    xyz = np.stack([numbers_line(path, i + 2, l.split(), 63) for i, l in enumerate(lines[1:])]) \
        if n else np.zeros((0, 63))
    xyz = xyz.reshape(n, 21, 3)
    xyz[..., 2] *= -1
    return xyz


def read_bin(path) -> np.ndarray:
    """One ``.bin`` frame -> (H, W) float32 depth in mm, 0 outside the stored box."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path}: depth file not found")
    raw = path.read_bytes()
    if len(raw) < 24:
        raise DatasetFormatError(f"{path}: {len(raw)} bytes, expected a 24-byte int32 header")
    w, h, left, top, right, bottom = np.frombuffer(raw[:24], dtype="<i4")
    bw, bh = right - left, bottom - top
    if not (0 <= left <= right <= w and 0 <= top <= bottom <= h):
        raise DatasetFormatError(f"{path}: box {left, top, right, bottom} outside the {w}x{h} image")
    if len(raw) != 24 + 4 * bw * bh:
        raise DatasetFormatError(f"{path}: {len(raw) - 24} data bytes, expected {4 * bw * bh} "
                                 f"for a {bw}x{bh} float32 box")
    depth = np.zeros((h, w), dtype=np.float32)
    depth[top:bottom, left:right] = np.frombuffer(raw[24:], dtype="<f4").reshape(bh, bw)
    return depth


def write_bin(path, depth: np.ndarray) -> None:
    """Inverse of :func:`read_bin` (box = bounding box of non-zero pixels), for fixtures."""
    rows, cols = np.nonzero(depth)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    h, w = depth.shape
    header = np.array([w, h, left, top, right, bottom], dtype="<i4").tobytes()
    Path(path).write_bytes(header + depth[top:bottom, left:right].astype("<f4").tobytes())


class MSRADataset(CroppedDepthDataset):
    """MSRA frames of ``subjects`` (default all 9), in P0..P8 / sorted-gesture order.

    Cube: CrossInfoNet's test cube 175 mm unless given. CoM: ``centres`` when given, else docom
    around joint 9. ``skip_faulty`` drops the known faulty frames."""

    def __init__(self, root, subjects=SUBJECTS, *, cube=175.0, centres=None, size: int = 96,
                 skip_faulty: bool = False, **kwargs):
        bad = [s for s in subjects if s not in SUBJECTS]
        if bad:
            raise ValueError(f"MSRA subjects {bad}; expected names from {SUBJECTS}")
        root = check_layout("msra", root)
        present = [s for s in subjects if (root / s).is_dir()]
        if not present:
            raise layout_error("msra", root, f"exists but has none of the subject folders "
                                             f"{', '.join(s + '/' for s in subjects)}")
        paths, xyz, self.frame_keys = [], [], []
        for subject in present:   # a subject folder that is absent is skipped, like an absent gesture
            gestures = [g for g in GESTURES if (root / subject / g).is_dir()]
            if not gestures:
                raise layout_error("msra", root, f"exists but its {subject}/ holds no gesture folder")
            for gesture in gestures:
                folder = root / subject / gesture
                check_layout("msra", root, (f"{subject}/{gesture}/joint.txt",))
                joints = read_joint_file(folder / "joint.txt")
                faulty = set(FAULTY_FRAMES.get((subject, gesture), ())) if skip_faulty else set()
                for i in range(len(joints)):
                    if i in faulty:
                        continue
                    paths.append(folder / f"{i:06d}_depth.bin")
                    xyz.append(joints[i])
                    self.frame_keys.append((subject, gesture, i))
        if not paths:
            raise layout_error("msra", root, f"exists but its joint.txt files list no frames for "
                                             f"subjects {', '.join(present)}")
        check_first_frame("msra", root, paths, f"{paths[0].parent.relative_to(root)}/joint.txt")
        # Sequences: one per subject/gesture folder; a skipped faulty frame splits it.
        self.sequence_keys = [key[:2] for key in self.frame_keys]
        self.frame_numbers = [key[2] for key in self.frame_keys]
        cam = get_camera("msra")
        uvd = xyz_to_uvd(torch.from_numpy(np.stack(xyz)), cam).numpy()
        super().__init__(paths, uvd, cam, "msra", cube, size=size, centres=centres,
                         com_joint=CROP_JOINT, **kwargs)

    @classmethod
    def for_split(cls, root, split: str, *, size: int = 96, seed: int = 0) -> "MSRADataset":
        """Leave-one-subject-out fold P0 (the papers average all 9 folds): 'train' = P1..P8, 'test' = P0."""
        if split not in ("train", "test"):
            raise ValueError(f"MSRA split {split!r}; expected 'train' or 'test'")
        return cls(root, subjects=SUBJECTS[1:] if split == "train" else SUBJECTS[:1], size=size)

    def load_depth(self, index: int) -> np.ndarray:
        return read_bin(self.depth_paths[index])


def leave_one_out(root, test_subject: str, **kwargs) -> tuple[MSRADataset, MSRADataset]:
    """(train on the other 8 subjects, test on ``test_subject``): one of the 9 folds."""
    if test_subject not in SUBJECTS:
        raise ValueError(f"MSRA test subject {test_subject!r}; expected one of {SUBJECTS}")
    train = MSRADataset(root, [s for s in SUBJECTS if s != test_subject], **kwargs)
    return train, MSRADataset(root, [test_subject], **kwargs)
