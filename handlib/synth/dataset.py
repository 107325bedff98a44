"""Datasets of synthetic depth hands in the shared sample structure (``handlib.sample``).

``SyntheticHands`` yields independent frames, ``SyntheticClips`` smooth clips of T frames. Both
render-or-load 256-frame shards from the cache (:mod:`handlib.synth.cache`), rendering missing
shards in single-threaded worker processes, and convert the canonical render to any joint
convention and camera on load.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context

import numpy as np
import torch
from tqdm.auto import tqdm

from handlib.synth.poses import FAST_MOVES
from handlib.geometry import (Camera, get_camera, normalize_depth, normalize_joints,
                              transform_points_2d, xyz_to_uvd)
from handlib.dataset_registry import convention_camera
from handlib.joints import CONVENTIONS, get_convention
from handlib.synth.cache import cache_root, load_shard, save_shard, shard_path
from handlib.synth.frames import (check_cube, check_domain, check_size, render_clips,
                                  render_frames)

SHARD_FRAMES = 256
DEPTH_UNITS_PER_MM = 10  # cached depth is uint16 in 0.1 mm
# Camera whose intrinsics (and y direction) the synthetic frames are expressed in, per convention.
DEFAULT_CAMERA = {name: convention_camera(name) for name in CONVENTIONS}   # handlib.dataset_registry


def _check_common(split, n, seed, cube, what="n"):
    if not isinstance(split, str) or not split:
        raise ValueError(f"split must be a non-empty string such as 'train', got {split!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"{what} must be a positive integer, got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    check_cube(cube)


def _to_arrays(out: dict) -> dict[str, np.ndarray]:
    """Rendered tensors -> the compact cached form."""
    arrays = {k: v.numpy() for k, v in out.items() if k != "depth_mm"}
    depth = torch.round(out["depth_mm"] * DEPTH_UNITS_PER_MM).clamp(0, 65535)
    arrays["depth"] = depth.to(torch.int32).numpy().astype(np.uint16)
    return arrays


def _render_shard(settings: dict, path: str | None) -> dict[str, np.ndarray]:
    """Render one shard (in a worker or in-process); also write it to ``path`` when given."""
    start, count = settings["start"], settings["count"]
    common = dict(seed=settings["seed"], split=settings["split"], domain=settings["domain"],
                  size=settings["size"], cube=settings["cube"])
    if settings["kind"] == "frames":
        out = render_frames(torch.arange(start, start + count), **common)
    else:
        out = render_clips(torch.arange(start, start + count), frames=settings["frames"],
                           keyframe_every=settings["keyframe_every"],
                           fast_moves=settings.get("fast_moves", 0.0),
                           detector_centre=settings.get("detector_centre", False), **common)
    arrays = _to_arrays(out)
    if path is not None:
        save_shard(Path(path), settings, arrays)
    return arrays


def worker_context():
    """Process start method for render workers: fork on Linux (no re-import of the caller's
    ``__main__``, no second torch import; safe because each worker drops to one thread before
    any torch op), spawn elsewhere (fork is unsafe on macOS)."""
    return get_context("fork" if sys.platform.startswith("linux") else "spawn")


def init_worker():
    # One intra-op thread per process: N processes on N cores, no oversubscription.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def build_shards(shards: list[dict], cache_dir=None, workers: int | None = None,
                 progress: bool = True, use_cache: bool = True) -> list[dict[str, np.ndarray]]:
    """Load every shard from the cache, rendering the missing ones (in parallel when useful)."""
    root = cache_root(cache_dir)
    results: list[dict | None] = [None] * len(shards)
    missing = []
    for i, settings in enumerate(shards):
        if use_cache:
            results[i] = load_shard(shard_path(root, settings), settings)
        if results[i] is None:
            missing.append(i)
    if not missing:
        return results
    n_workers = min(workers or os.cpu_count() or 1, len(missing))
    bar = tqdm(total=len(missing), desc="rendering synthetic hands", unit="shard", disable=not progress)
    if n_workers <= 1 or not use_cache:
        for i in missing:
            path = str(shard_path(root, shards[i])) if use_cache else None
            results[i] = _render_shard(shards[i], path)
            bar.update()
    else:
        with ProcessPoolExecutor(n_workers, mp_context=worker_context(),
                                 initializer=init_worker) as pool:
            futures = {pool.submit(_render_shard, shards[i], str(shard_path(root, shards[i]))): i
                       for i in missing}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update()
    bar.close()
    return results


class _SyntheticBase(torch.utils.data.Dataset):
    """Shared conversion from the canonical render to a convention/camera."""

    def _setup(self, split, domain, convention, size, seed, cube, camera):
        self.split, self.seed = split, seed
        self.cube_mm = [float(c) for c in cube] if isinstance(cube, (tuple, list)) else float(cube)
        self.domain = check_domain(domain)
        self.size = check_size(size)
        self.convention = get_convention(convention)
        if camera is None:
            camera = DEFAULT_CAMERA[self.convention.name]
        self.camera: Camera = get_camera(camera) if isinstance(camera, str) else camera

    def _convert(self, arrays: dict[str, np.ndarray]) -> None:
        """Precompute every per-frame label tensor once (vectorised over all frames)."""
        cam, size = self.camera, self.size
        points = torch.from_numpy(arrays["points"]).reshape(-1, 25, 3)
        com = torch.from_numpy(arrays["com"]).reshape(-1, 3)
        cube_mm = torch.from_numpy(arrays["cube"]).reshape(-1)
        # Rendering uses OpenCV axes (y down); a camera with fy < 0 has y up (NYU, MSRA loaders).
        flip = torch.tensor([1.0, -1.0 if cam.fy < 0 else 1.0, 1.0])
        index = torch.tensor(self.convention.from_canonical)
        joints_xyz = points[:, index] * flip
        com_out = com * flip
        cube3 = cube_mm[:, None].expand(-1, 3).contiguous()
        joints = normalize_joints(joints_xyz, com_out, cube3)
        uvd = xyz_to_uvd(joints_xyz, cam)
        # Crop window [com +- cube/2] at depth cz, pixel centres at (j + 1/2) C/S (render.py).
        fx, fy = cam.fx, abs(cam.fy)
        sx = size * com[:, 2] / (fx * cube_mm)
        sy = size * com[:, 2] / (fy * cube_mm)
        left = cam.cx + fx * (com[:, 0] - cube_mm / 2) / com[:, 2]
        top = cam.cy + fy * (com[:, 1] - cube_mm / 2) / com[:, 2]
        m = torch.zeros(com.shape[0], 3, 3)
        m[:, 0, 0], m[:, 0, 2] = sx, -sx * left - 0.5
        m[:, 1, 1], m[:, 1, 2] = sy, -sy * top - 0.5
        m[:, 2, 2] = 1.0
        crop = transform_points_2d(uvd, m)
        crop = torch.cat((crop[..., :2], joints[..., 2:]), -1)
        self._labels = {
            "joints": joints.float(), "joints_xyz": joints_xyz.float(), "joints_uvd": uvd.float(),
            "joints_crop": crop.float(), "com": com_out.float(), "cube": cube3.float(),
            "transform": m, "visible": torch.from_numpy(arrays["visible"]).reshape(-1, 25)[:, index],
        }
        self._depth = arrays["depth"].reshape(-1, self.size, self.size)  # uint16, 0.1 mm units
        self._parts = torch.from_numpy(arrays["parts"])
        self.theta = torch.from_numpy(arrays["theta"])
        self.pose = torch.from_numpy(arrays["pose"])
        self.shape = torch.from_numpy(arrays["shape"])

    def depth_mm(self, indices) -> torch.Tensor:
        """(N, S, S) cached crop depth in mm (0 = background / missing), before normalisation."""
        idx = np.asarray(torch.as_tensor(indices, dtype=torch.int64).reshape(-1))
        return torch.from_numpy(self._depth[idx].astype(np.float32)) / DEPTH_UNITS_PER_MM

    def _frame_sample(self, flat: torch.Tensor) -> dict:
        """Samples for flat frame indices (any shape of indices, leading axes kept)."""
        lead = flat.shape
        flat = flat.reshape(-1)
        depth_mm = self.depth_mm(flat)
        labels = {k: v[flat] for k, v in self._labels.items()}
        depth = normalize_depth(depth_mm, labels["com"][:, 2], labels["cube"][:, 2]).unsqueeze(1)
        sample = {"depth": depth, **labels,
                  "parts": self._parts.reshape(-1, self.size, self.size)[flat].long()}
        return {k: v.reshape(lead + tuple(v.shape[1:])) for k, v in sample.items()}


class SyntheticHands(_SyntheticBase):
    """Independent synthetic frames, rendered once and cached.

    ``split`` names an independent random stream ("train", "val", "test", ...); frame ``i`` of a
    (seed, split, domain) stream is the same whatever ``n`` is. ``convention`` picks the joint set
    (nyu, icvl, msra, hands17, full) and, unless ``camera`` is given, the intrinsics its uvd use.
    ``domain="real-like"`` adds the sensor corruption; its part labels are flagged
    ``parts_trainable = False``. ``cube`` is the crop cube in mm, or ``(low, high)`` for
    CrossInfoNet-style per-frame cubes in 10 mm steps (e.g. ``(250, 300)`` for NYU training).
    """

    def __init__(self, split: str = "train", n: int = 1024, size: int = 96,
                 domain: str = "synthetic", convention: str = "nyu", seed: int = 0,
                 cube: float | tuple[float, float] = 250.0, camera: str | Camera | None = None,
                 cache_dir=None,
                 workers: int | None = None, progress: bool = True, use_cache: bool = True):
        _check_common(split, n, seed, cube)
        self._setup(split, domain, convention, size, seed, cube, camera)
        self.n = n
        shards = [dict(kind="frames", seed=seed, split=split, domain=domain, size=size,
                       cube=self.cube_mm, start=s, count=min(SHARD_FRAMES, n - s))
                  for s in range(0, n, SHARD_FRAMES)]
        parts = build_shards(shards, cache_dir, workers, progress, use_cache)
        self._convert({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})

    @classmethod
    def for_profile(cls, profile: str, split: str = "train", chapter: str | None = None,
                    **kwargs) -> "SyntheticHands":
        """The split's size and crop size from ``handlib.profiles.get_profile(profile, chapter)``
        (train -> train_frames, val -> val_frames, anything else -> test_frames)."""
        from handlib.profiles import get_profile
        prof = get_profile(profile, chapter)
        n = {"train": prof.train_frames, "val": prof.val_frames}.get(split, prof.test_frames)
        kwargs.setdefault("size", prof.image_size)
        return cls(split, n, **kwargs)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        if not -self.n <= index < self.n:
            raise IndexError(f"frame index {index} out of range for {self.n} frames")
        index = index % self.n
        sample = self._frame_sample(torch.tensor([index]))
        sample = {k: v[0] for k, v in sample.items()}
        sample["parts_trainable"] = torch.tensor(self.domain == "synthetic")
        sample["index"] = torch.tensor(index, dtype=torch.int64)
        return sample

    def batch(self, indices) -> dict:
        """A collated batch without a DataLoader (vectorised; what ``default_collate`` gives)."""
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        sample = self._frame_sample(idx)
        sample["parts_trainable"] = torch.full((idx.numel(),), self.domain == "synthetic")
        sample["index"] = idx
        return sample


class SyntheticClips(_SyntheticBase):
    """Temporally smooth clips of ``frames`` frames (for the temporal chapter).

    Each item holds the frame sample's keys with a leading time axis T (``depth`` (T, 1, S, S),
    ``joints`` (T, J, 3), ...), plus ``index`` (the clip), ``frame`` (T,), ``sequence`` (= the clip)
    and ``start`` (0). Clips are independent sequences, so a train/test split by clip is a split by
    sequence."""

    def __init__(self, split: str = "train", n: int = 64, frames: int = 16, size: int = 96,
                 domain: str = "synthetic", convention: str = "nyu", seed: int = 0,
                 cube: float = 250.0, keyframe_every: int = 20, fast_moves: float = FAST_MOVES,
                 detector_centre: bool = False, camera=None, cache_dir=None,
                 workers: int | None = None, progress: bool = True, use_cache: bool = True):
        _check_common(split, n, seed, cube)
        if not isinstance(frames, int) or frames <= 0:
            raise ValueError(f"frames (clip length) must be a positive integer, got {frames!r}")
        if not isinstance(keyframe_every, int) or keyframe_every <= 0:
            raise ValueError(f"keyframe_every must be a positive integer, got {keyframe_every!r}")
        self._setup(split, domain, convention, size, seed, cube, camera)
        self.n, self.frames = n, frames
        per_shard = max(1, SHARD_FRAMES // frames)
        shards = [dict(kind="clips", seed=seed, split=split, domain=domain, size=size,
                       cube=self.cube_mm, frames=frames, keyframe_every=keyframe_every, fast_moves=fast_moves,
                       start=s, count=min(per_shard, n - s),
                       # only when set, so that the default clips keep their cache names
                       **({"detector_centre": True} if detector_centre else {}))
                  for s in range(0, n, per_shard)]
        parts = build_shards(shards, cache_dir, workers, progress, use_cache)
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        self._convert({k: v.reshape((-1,) + v.shape[2:]) for k, v in arrays.items()})

    def __len__(self) -> int:
        return self.n

    def frame_sample(self, clip: int, step: int) -> dict:
        """Frame ``step`` of clip ``clip`` with a frame dataset's keys (without loading the clip)."""
        sample = {k: v[0] for k, v in self._frame_sample(torch.tensor([clip * self.frames + step])).items()}
        sample["parts_trainable"] = torch.tensor(self.domain == "synthetic")
        return sample

    def __getitem__(self, index: int) -> dict:
        if not -self.n <= index < self.n:
            raise IndexError(f"clip index {index} out of range for {self.n} clips")
        index = index % self.n
        sample = self._frame_sample(index * self.frames + torch.arange(self.frames))
        sample["parts_trainable"] = torch.full((self.frames,), self.domain == "synthetic")
        sample["index"] = torch.tensor(index, dtype=torch.int64)
        sample["frame"] = torch.arange(self.frames)
        # Each clip is its own rendered sequence, starting at its frame 0 (as handlib.datasets.ClipDataset).
        sample["sequence"] = torch.tensor(index, dtype=torch.int64)
        sample["start"] = torch.tensor(0, dtype=torch.int64)
        return sample
