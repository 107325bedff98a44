"""What every real-dataset loader shares: per-frame CoM choice, cube, crop -> one sample dict.

A loader subclass lists its frames (depth-file paths and full-image uvd joints) and knows how to
decode one depth file; :class:`CroppedDepthDataset` turns frame ``i`` into the sample structure of
:mod:`handlib.sample`. The CoM of a frame comes, in this order of preference, from
(1) a given centres file (V2V's "refined centres": one ``x y z`` line in world mm or ``invalid``),
(2) ``docom`` refinement around a GT joint (``com_joint``; MSRA in CrossInfoNet),
(3) the CoM of all valid pixels of the frame (``HandDetector.calculateCoM``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from handlib.data.crop import center_of_mass, crop_batch, refine_com
from handlib.dataset_registry import dataset_names, get_dataset
from handlib.geometry import Camera, xyz_to_uvd
from handlib.joints import get_convention
from handlib.errors import DatasetFormatError


# What each loader reads under its data root: the one description every layout error quotes
# (titles and layouts live in handlib.dataset_registry).
DATASET_TITLES = {name: get_dataset(name).title for name in dataset_names("real")}
EXPECTED_LAYOUT = {name: get_dataset(name).layout for name in dataset_names("real")}


def layout_error(dataset: str, root, problem: str) -> DatasetFormatError:
    """A :class:`DatasetFormatError` naming the data root, what is wrong and the expected layout."""
    return DatasetFormatError(f"{DATASET_TITLES[dataset]} data root {root} {problem}\n"
                              f"  expected layout: {EXPECTED_LAYOUT[dataset]}")


def check_layout(dataset: str, root, items=()) -> Path:
    """``root`` as a Path once it is a folder holding ``items`` (relative paths, in the order given;
    a trailing ``/`` means a folder), else :func:`layout_error` naming the first missing one."""
    root = Path(root)
    if not root.exists():
        raise layout_error(dataset, root, "does not exist")
    if not root.is_dir():
        raise layout_error(dataset, root, "is a file, not a folder")
    for item in items:
        path = root / item
        folder = item.endswith("/")
        if folder and not path.is_dir() or not folder and not path.is_file():
            kind = "folder" if folder else "file"
            if path.exists():
                raise layout_error(dataset, root, f"exists but its {item.rstrip('/')} is not a {kind}")
            raise layout_error(dataset, root, f"exists but has no {kind} {item}")
    return root


def check_first_frame(dataset: str, root, paths, source: str) -> None:
    """Fail early, with the layout, when the first frame's depth file listed by ``source`` is missing."""
    if paths and not Path(paths[0]).is_file():
        rel = Path(paths[0]).relative_to(root) if Path(paths[0]).is_relative_to(root) else paths[0]
        raise layout_error(dataset, root, f"exists but has no {rel} (the first frame listed in {source})")


def read_centres(path, cam: Camera, frames: int | None = None) -> np.ndarray:
    """V2V centres file -> (N, 3) uvd float64; ``invalid`` lines become NaN (fall back per frame)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path}: centres file not found")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if frames is not None and len(lines) != frames:
        raise DatasetFormatError(f"{path}: {len(lines)} centres, expected one per frame ({frames})")
    xyz = np.full((len(lines), 3), np.nan)
    for i, line in enumerate(lines):
        parts = line.split()
        if parts[0].lower() == "invalid":
            continue
        if len(parts) != 3:
            raise DatasetFormatError(f"{path}, line {i + 1}: expected 'x y z' (mm) or 'invalid'")
        try:
            xyz[i] = [float(p) for p in parts]
        except ValueError:
            raise DatasetFormatError(f"{path}, line {i + 1}: non-numeric centre {line!r}") from None
    return xyz_to_uvd(torch.from_numpy(xyz), cam).numpy()


class CroppedDepthDataset(Dataset):
    """Base class: ``depth_paths`` (N,), ``joints_uvd`` (N, J, 3), per-frame ``cube`` (N, 3) mm."""

    def __init__(self, depth_paths, joints_uvd, cam: Camera, convention: str, cube, *,
                 size: int = 96, centres=None, com_joint: int | None = None, com_iterations: int = 1,
                 min_depth: float = 10.0, max_depth: float = 1500.0):
        self.depth_paths = list(depth_paths)
        self.joints_uvd = np.asarray(joints_uvd, dtype=np.float64)
        n = len(self.depth_paths)
        if self.joints_uvd.shape[0] != n:
            raise ValueError(f"{self.joints_uvd.shape[0]} joint annotations for {n} depth files")
        self.cam = cam
        self.convention = get_convention(convention)
        if self.joints_uvd.shape[1:] != (self.convention.num_joints, 3):
            raise ValueError(f"joints have shape {self.joints_uvd.shape[1:]}, expected "
                             f"({self.convention.num_joints}, 3) for convention {convention!r}")
        cube = np.asarray(cube, dtype=np.float64)
        self.cube = np.broadcast_to(cube.reshape(-1, 3) if cube.ndim else np.full(3, cube), (n, 3)).copy()
        self.size = size
        if centres is not None and not isinstance(centres, np.ndarray):
            centres = read_centres(centres, cam, frames=n)
        self.centres = centres
        self.com_joint = com_joint
        self.com_iterations = com_iterations
        self.min_depth, self.max_depth = min_depth, max_depth

    # Per frame (set by a subclass): the recording it belongs to (any hashable; None = all one) and its
    # native frame number (None = unknown). See :meth:`sequences`.
    sequence_keys: list | None = None
    frame_numbers: list[int] | None = None

    @classmethod
    def for_split(cls, root, split: str, *, size: int = 96, seed: int = 0) -> "CroppedDepthDataset":
        """The loader for handlib.datasets' ``split`` ('train' or 'test') with the papers' settings."""
        raise NotImplementedError(f"{cls.__name__} has no train/test split")

    def sequences(self) -> list[tuple[int, int]]:
        """Half-open frame ranges ``(start, stop)`` of consecutive frames, in order, covering every
        frame: a new range starts where the sequence key changes or the native frame number does not
        go up by exactly one (a skipped or missing frame)."""
        n = len(self)
        starts = [i for i in range(n) if i == 0
                  or self.sequence_keys is not None and self.sequence_keys[i] != self.sequence_keys[i - 1]
                  or self.frame_numbers is not None and self.frame_numbers[i] != self.frame_numbers[i - 1] + 1]
        return list(zip(starts, starts[1:] + [n]))

    def __len__(self) -> int:
        return len(self.depth_paths)

    def load_depth(self, index: int) -> np.ndarray:
        """(H, W) depth in mm, 0 = no value. Subclasses decode their format."""
        raise NotImplementedError

    def com_uvd(self, depth: torch.Tensor, index: int) -> torch.Tensor:
        """(3,) CoM in uvd for frame ``index`` (see the module docstring for the order)."""
        if self.centres is not None and np.isfinite(self.centres[index]).all():
            return torch.from_numpy(self.centres[index])
        cube = torch.from_numpy(self.cube[index]).unsqueeze(0)
        if self.com_joint is not None:
            start = torch.from_numpy(self.joints_uvd[index, self.com_joint]).unsqueeze(0)
            return refine_com(depth.unsqueeze(0), start, cube, self.cam, self.com_iterations)[0]
        masked = torch.where((depth >= self.min_depth) & (depth <= self.max_depth), depth,
                             torch.zeros_like(depth))
        com, count = center_of_mass(masked.unsqueeze(0))
        if count[0] == 0:
            raise ValueError(f"{self.depth_paths[index]}: no depth values in "
                             f"[{self.min_depth}, {self.max_depth}] mm to centre the crop on")
        return com[0]

    def __getitem__(self, index: int) -> dict:
        depth = torch.from_numpy(np.ascontiguousarray(self.load_depth(index), dtype=np.float64))
        com = self.com_uvd(depth, index)
        sample = crop_batch(depth.unsqueeze(0), torch.from_numpy(self.joints_uvd[index]).unsqueeze(0),
                            com.unsqueeze(0), torch.from_numpy(self.cube[index]).unsqueeze(0),
                            self.cam, self.size)
        sample = {k: v[0] for k, v in sample.items()}
        j = self.convention.num_joints
        sample["visible"] = torch.ones(j, dtype=torch.bool)
        sample["parts"] = torch.full((self.size, self.size), -1, dtype=torch.int64)
        sample["parts_trainable"] = torch.tensor(False)
        sample["index"] = torch.tensor(index, dtype=torch.int64)
        return sample


def read_png(path, channels: int | None = None) -> np.ndarray:
    """PNG -> numpy array, with a clear error when the file is missing or has the wrong layout."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path}: depth image not found")
    with Image.open(path) as im:
        arr = np.array(im)
    got = 1 if arr.ndim == 2 else arr.shape[2]
    if channels is not None and got != channels:
        raise DatasetFormatError(f"{path}: {got}-channel image, expected {channels} channel(s)")
    return arr


def numbers_line(path, line_no: int, tokens: list[str], count: int) -> np.ndarray:
    """Parse ``count`` floats from one annotation line, naming file and line on failure."""
    if len(tokens) != count:
        raise DatasetFormatError(f"{path}, line {line_no}: {len(tokens)} numbers, expected {count}")
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        raise DatasetFormatError(f"{path}, line {line_no}: non-numeric annotation") from None
