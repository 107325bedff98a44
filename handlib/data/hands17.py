"""HANDS 2017 frame-based challenge (BigHand2.2M): ``Training_Annotation.txt`` + 16-bit PNGs.

Layout ``<root>/training/Training_Annotation.txt`` (image name then 21 x (x y z) world mm, any
whitespace) and ``<root>/training/images/image_DNNNNNNNN.png``. Own intrinsics, y not flipped, and
its own joint order (all five MCPs first; V2V-PoseNet's loader). The test set has no public labels.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from handlib.data.base import (CroppedDepthDataset, DatasetFormatError, check_first_frame, check_layout,
                               numbers_line, read_png)
from handlib.geometry import get_camera, xyz_to_uvd


def read_annotations(path) -> tuple[list[str], np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path}: Training_Annotation.txt not found")
    names, xyz = [], []
    for i, line in enumerate(path.read_text().splitlines()):
        tokens = line.split()
        if tokens:
            names.append(tokens[0])
            xyz.append(numbers_line(path, i + 1, tokens[1:], 63).reshape(21, 3))
    return names, np.stack(xyz) if xyz else np.zeros((0, 21, 3))


class Hands17Dataset(CroppedDepthDataset):
    """HANDS2017 training frames. Cube 250 mm (V2V). CoM: ``centres`` when given, else docom around
    the middle MCP (index 3) — V2V and A2J use their own refined centres instead."""

    def __init__(self, root, *, cube=250.0, centres=None, size: int = 96, **kwargs):
        root = check_layout("hands17", root, ("training/", "training/Training_Annotation.txt",
                                              "training/images/"))
        folder = root / "training"
        names, xyz = read_annotations(folder / "Training_Annotation.txt")
        self.names = names
        # Sequence boundaries are not in the annotation: split only where the image numbering jumps.
        numbers = [int(m.group(1)) if (m := re.search(r"(\d+)$", Path(n).stem)) else None for n in names]
        self.frame_numbers = None if None in numbers else numbers
        check_first_frame("hands17", root, [folder / "images" / n for n in names[:1]],
                          "training/Training_Annotation.txt")
        cam = get_camera("hands17")
        uvd = xyz_to_uvd(torch.from_numpy(xyz), cam).numpy()
        super().__init__([folder / "images" / n for n in names], uvd, cam, "hands17", cube,
                         size=size, centres=centres, com_joint=3, **kwargs)

    @classmethod
    def for_split(cls, root, split: str, *, size: int = 96, seed: int = 0) -> "Hands17Dataset":
        if split != "train":
            raise ValueError(f"HANDS2017 split {split!r}: only 'train' is labelled (the test labels are not public)")
        return cls(root, size=size)

    def load_depth(self, index: int) -> np.ndarray:
        return read_png(self.depth_paths[index], channels=1).astype(np.float32)
