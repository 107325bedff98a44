"""The dataset registry: the one place that lists handlib's datasets and what each one is.

Every ``--dataset`` choice, dataset error message and per-dataset table in handlib is read from
here (profiles.DATASET_NAMES, the CLIs' choices, geometry's intrinsics, the published evaluation's
joint and frame counts, the loaders' layout errors, ``handlib.datasets.build_datasets``).
Facts from the datasets' loaders (DeepPrior++, CrossInfoNet, V2V-PoseNet), the
awesome-hand-pose-estimation evaluation (``evaluation/src/util.py``) and the synthetic-hands renderer.

This module is light on purpose: it imports no torch or numpy (``python -m handlib --help`` builds
its parser from it); loaders are named by import path and imported by :meth:`DatasetInfo.load`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import NamedTuple

from handlib.joints import CONVENTIONS


class Intrinsics(NamedTuple):
    """Pinhole intrinsics and image size in pixels (``handlib.geometry.Camera`` is built from these)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


@dataclass(frozen=True)
class DatasetInfo:
    """What handlib knows about one dataset.

    ``conventions``: the joint conventions its labels come in (real data: exactly its own, named like
    the dataset; synthetic: any of ``handlib.joints.CONVENTIONS``). ``train_intrinsics`` are the ones
    the training code (and handlib's loaders) read the data with, ``eval_intrinsics`` the AWESOME
    evaluation's (None: not evaluated with that protocol); handlib.geometry's camera presets are
    keyed by dataset name and built from these. ``test_frames`` is the published test-set size and
    ``eval_joints`` the joints scored per test frame (None where there is none). ``loader`` is
    ``"module:attribute"`` of the frame loader (real loaders provide ``for_split(root, split, *,
    size, seed)`` and ``sequences()``), ``clip_loader`` that of a native clip loader where there is
    one (real data: clips are windows of the frame loader, see handlib.datasets.ClipDataset).
    ``domain`` is the renderer's domain of a synthetic dataset (``handlib.synth.poses.DOMAINS``)."""

    name: str
    title: str                                   # how messages name it
    conventions: tuple[str, ...]
    splits: tuple[str, ...]                      # the loader's native splits
    sequences: str                               # how consecutive frames are grouped
    loader: str
    synthetic: bool = False
    domain: str = "synthetic"                    # synthetic datasets: the renderer's domain
    clip_loader: str | None = None
    train_intrinsics: Intrinsics | None = None   # None: synthetic (the rendered convention's camera)
    eval_intrinsics: Intrinsics | None = None
    test_frames: int | None = None
    eval_joints: int | None = None
    labelled_test: bool = True                   # a labelled test split to train and evaluate on
    part_labels: bool = False                    # per-pixel part labels (sample["parts"]) exist
    layout: str = ""                             # the expected folder layout under the data root
    ground_truth: str | None = None              # AWESOME path of the published test ground truth
    note: str = ""

    @property
    def convention(self) -> str:
        """The default joint convention (real data: its only one)."""
        return self.conventions[0]

    def load(self, clips: bool = False):
        """The loader class (or factory) named by ``loader`` (``clip_loader`` when ``clips``)."""
        path = self.clip_loader if clips else self.loader
        if path is None:
            raise ValueError(f"dataset {self.name!r} has no native clip loader")
        module, _, attr = path.partition(":")
        return getattr(importlib.import_module(module), attr)


_DATASETS: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        name="synthetic", title="synthetic", conventions=tuple(CONVENTIONS),
        splits=("train", "val", "test"), synthetic=True,
        sequences="frames are independent renders; a clip is one rendered trajectory of T frames "
                  "(keyframes every 20 frames, Catmull-Rom in angle space), its own sequence",
        loader="handlib.synth.dataset:SyntheticHands", clip_loader="handlib.synth.dataset:SyntheticClips",
        part_labels=True,
        note="any split name is an independent random stream; build_datasets renders train/val/test"),
    DatasetInfo(
        name="real-like", title="real-like", conventions=tuple(CONVENTIONS),
        splits=("train", "val", "test"), synthetic=True, domain="real-like",
        sequences="as the synthetic dataset's: independent renders, or one rendered trajectory per clip",
        loader="handlib.synth.dataset:SyntheticHands", clip_loader="handlib.synth.dataset:SyntheticClips",
        note="the synthetic hands in the renderer's real-like domain: another hand-shape distribution and "
             "the depth sensor's corruption (handlib.synth.sensor), a stand-in for recorded frames; its "
             "streams are independent of the synthetic dataset's (the domain keys every frame); its part "
             "labels are hidden from training (parts_trainable False), so it has none to train on"),
    DatasetInfo(
        name="nyu", title="NYU", conventions=("nyu",), splits=("train", "test"),
        sequences="train: one sequence (subject A, Kinect 1); test: subject A (frames 1-2440) then "
                  "subject B; a sequence also ends where the frame numbering jumps",
        loader="handlib.data.nyu:NYUDataset",
        train_intrinsics=Intrinsics(588.03, -587.07, 320.0, 240.0, 640, 480),
        eval_intrinsics=Intrinsics(588.03, -587.07, 320.0, 240.0, 640, 480),
        test_frames=8252, eval_joints=14,
        layout="train/ and test/, each holding joint_data.mat (array joint_uvd) and one 3-channel PNG per "
               "frame: depth_1_0000001.png, depth_1_0000002.png, ...",
        ground_truth="evaluation/groundtruth/nyu/nyu_test_groundtruth_label.txt"),
    DatasetInfo(
        name="icvl", title="ICVL", conventions=("icvl",), splits=("train", "test"),
        sequences="train: one sequence per image folder (the path before the file name; rotated copies "
                  "are their own folders); test: test_seq_1 (A), test_seq_2 (B); a sequence also ends "
                  "where the image numbering jumps",
        loader="handlib.data.icvl:ICVLDataset",
        train_intrinsics=Intrinsics(241.42, 241.42, 160.0, 120.0, 320, 240),
        eval_intrinsics=Intrinsics(240.99, 240.96, 160.0, 120.0, 320, 240),
        test_frames=1596, eval_joints=16,
        layout="Training/labels.txt with Training/Depth/ and Testing/test_seq_1.txt, test_seq_2.txt with "
               "Testing/Depth/; a label line is an image path under Depth/ (16-bit PNG) then 16 joints x (u v d)",
        ground_truth="evaluation/groundtruth/icvl/icvl_test_groundtruth_label.txt"),
    DatasetInfo(
        name="msra", title="MSRA", conventions=("msra",), splits=tuple(f"P{i}" for i in range(9)),
        sequences="one sequence per subject/gesture folder (P0/1, P0/2, ...); skipped faulty frames "
                  "split it",
        loader="handlib.data.msra:MSRADataset",
        train_intrinsics=Intrinsics(241.42, -241.42, 160.0, 120.0, 320, 240),
        eval_intrinsics=Intrinsics(241.42, 241.42, 160.0, 120.0, 320, 240),
        test_frames=76375, eval_joints=21,
        layout="P0/ ... P8/, each holding gesture folders (1 ... 9, I, IP, L, MP, RP, T, TIP, Y) with "
               "joint.txt and one file per frame: 000000_depth.bin, 000001_depth.bin, ...",
        note="leave-one-subject-out over P0..P8; build_datasets trains on P1-P8 and tests on P0 (fold P0)"),
    DatasetInfo(
        name="hands17", title="HANDS2017", conventions=("hands17",), splits=("train", "test"),
        sequences="unknown: the training annotation is one list; a sequence ends only where the image "
                  "numbering jumps",
        loader="handlib.data.hands17:Hands17Dataset",
        train_intrinsics=Intrinsics(475.065948, 475.065857, 315.944855, 245.287079, 640, 480),
        test_frames=295510, eval_joints=21, labelled_test=False,
        layout="training/Training_Annotation.txt (per line: an image name then 21 joints x (x y z) mm) and "
               "training/images/ holding those 16-bit PNGs (image_D00000001.png, ...)",
        note="the test labels are not public (scored on the challenge server)"),
)
DATASETS: dict[str, DatasetInfo] = {d.name: d for d in _DATASETS}

# dataset_names(kind): which datasets each kind of command or check accepts.
KINDS = {
    "real": lambda d: not d.synthetic,                       # recorded, with a native joint convention
    "synthetic": lambda d: d.synthetic,
    "trainable": lambda d: d.labelled_test,                  # train and evaluate on a labelled test split
    "evaluable": lambda d: d.eval_intrinsics is not None,    # the `evaluate` command (AWESOME protocol)
    "published": lambda d: d.ground_truth is not None,       # published test GT and predictions
    "part_labels": lambda d: d.part_labels,
}


def dataset_names(kind: str | None = None) -> tuple[str, ...]:
    """Names of all datasets, or of those of ``kind`` (one of :data:`KINDS`), in registry order."""
    if kind is None:
        return tuple(DATASETS)
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; valid values: {', '.join(KINDS)}")
    return tuple(name for name, info in DATASETS.items() if KINDS[kind](info))


def get_dataset(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; ValueError listing the valid names otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid values: {', '.join(DATASETS)}")
    return DATASETS[name]


def convention_camera(convention: str) -> str:
    """Name of the intrinsics preset synthetic frames in joint ``convention`` are expressed in: the real
    dataset labelled in that convention, NYU's for the canonical ``full`` set."""
    for info in _DATASETS:
        if not info.synthetic and convention in info.conventions:
            return info.name
    return "nyu"
