"""ICVL (Tang et al., CVPR 2014): ``labels.txt`` / ``test_seq_*.txt`` + 16-bit PNGs.

Layout (as DeepPrior++'s ``ICVLImporter`` reads it): ``<root>/Training/labels.txt``,
``<root>/Training/Depth/<path>``;
``<root>/Testing/test_seq_{1,2}.txt``, ``<root>/Testing/Depth/<path>``. Each label line is a path
and 16 joints x (u v d). 32001 marks "no value" in the depth maps. Rotated training copies live
under short (<= 6 character) first path components; ``genuine_only`` keeps the ~22k originals.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from handlib.data.base import CroppedDepthDataset, check_first_frame, check_layout, numbers_line, read_png
from handlib.geometry import get_camera

NO_VALUE = 32001
TEST_SEQUENCES = ("test_seq_1", "test_seq_2")


def read_labels(path) -> tuple[list[str], np.ndarray]:
    """label file -> (relative image paths, (N, 16, 3) uvd). CRLF and trailing spaces are fine."""
    path = Path(path)
    if not path.is_file():
        from handlib.data.base import DatasetFormatError
        raise DatasetFormatError(f"{path}: ICVL label file not found")
    names, joints = [], []
    for i, line in enumerate(path.read_text().splitlines()):
        tokens = line.split()
        if not tokens:
            continue
        names.append(tokens[0])
        joints.append(numbers_line(path, i + 1, tokens[1:], 48).reshape(16, 3))
    return names, np.stack(joints) if joints else np.zeros((0, 16, 3))


def is_genuine(relpath: str) -> bool:
    """DeepPrior's rule: genuine frames' first path component is longer than 6 characters."""
    return len(relpath.split("/")[0]) > 6


def image_number(relpath: str) -> int | None:
    """The frame number at the end of an image name (``.../image_0402.png`` -> 402), None without one."""
    digits = re.search(r"(\d+)$", Path(relpath).stem)
    return int(digits.group(1)) if digits else None


def decode_depth(raw: np.ndarray) -> np.ndarray:
    d = raw.astype(np.float32)
    d[raw == NO_VALUE] = 0
    return d


class ICVLDataset(CroppedDepthDataset):
    """ICVL ``split`` 'train' or 'test' (sequence 'A' = test_seq_1, 'B' = test_seq_2, None = both).

    Cube 250 mm (DeepPrior++ and CrossInfoNet's importer). CoM: ``centres`` when given, else the
    CoM of the pixels in a crop around the palm joint (index 0)."""

    def __init__(self, root, split: str = "test", *, sequence: str | None = None,
                 genuine_only: bool = False, cube=250.0, centres=None, size: int = 96, **kwargs):
        if split == "train":
            root = check_layout("icvl", root, ("Training/", "Training/labels.txt", "Training/Depth/"))
            sources = "Training/labels.txt"
            names, joints = read_labels(root / "Training" / "labels.txt")
            label_files = ["labels"] * len(names)
            if genuine_only:
                keep = np.array([is_genuine(n) for n in names], dtype=bool)
                names = [n for n, k in zip(names, keep) if k]
                label_files = label_files[:len(names)]
                joints = joints[keep]
            folder = root / "Training" / "Depth"
        elif split == "test":
            seqs = {"A": TEST_SEQUENCES[:1], "B": TEST_SEQUENCES[1:], None: TEST_SEQUENCES}
            if sequence not in seqs:
                raise ValueError(f"ICVL test sequence {sequence!r}; expected 'A', 'B' or None")
            root = check_layout("icvl", root, ("Testing/", *(f"Testing/{s}.txt" for s in seqs[sequence]),
                                               "Testing/Depth/"))
            sources = f"Testing/{seqs[sequence][0]}.txt"
            parts = [read_labels(root / "Testing" / f"{s}.txt") for s in seqs[sequence]]
            names = [n for p in parts for n in p[0]]
            label_files = [s for s, p in zip(seqs[sequence], parts) for _ in p[0]]
            joints = np.concatenate([p[1] for p in parts])
            folder = root / "Testing" / "Depth"
        else:
            raise ValueError(f"ICVL split {split!r}; expected 'train' or 'test'")
        self.names = names
        # Sequences: one per label file and image folder (the path before the file name), split
        # where the image number does not go up by one.
        self.sequence_keys = [(f, n.rpartition("/")[0]) for f, n in zip(label_files, names)]
        numbers = [image_number(n) for n in names]
        self.frame_numbers = None if None in numbers else numbers
        check_first_frame("icvl", root, [folder / n for n in names[:1]], sources)
        super().__init__([folder / n for n in names], joints, get_camera("icvl"), "icvl", cube,
                         size=size, centres=centres, com_joint=0, **kwargs)

    @classmethod
    def for_split(cls, root, split: str, *, size: int = 96, seed: int = 0) -> "ICVLDataset":
        return cls(root, split, size=size)

    def load_depth(self, index: int) -> np.ndarray:
        return decode_depth(read_png(self.depth_paths[index], channels=1))
