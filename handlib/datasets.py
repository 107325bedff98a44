"""One entry point from (dataset, profile) to train / val / test torch Datasets of sample dicts.

The synthetic hands come from ``handlib.synth``, the real datasets from ``handlib.data``; both are
imported only when asked for, so training code does not pull in a renderer it does not use.
Validation is always a held-out split separate from test: model selection never sees test frames.
"""
from __future__ import annotations

from torch.utils.data import Dataset, Subset

from handlib.profiles import DATASET_NAMES, Profile, check_choice, get_profile

SPLITS = ("train", "val", "test")


def build_datasets(dataset: str, profile: str | Profile, convention: str, size: int, seed: int,
                   data_root: str = "") -> dict[str, Dataset]:
    """{"train", "val", "test"} Datasets yielding handlib.sample dicts, sized by ``profile``.

    * ``synthetic``: three disjoint rendered splits (the renderer seeds each split separately).
    * real datasets: the official test split; validation is the last ``val_frames`` frames of the
      training split (a contiguous tail, so mostly whole sequences, not frames interleaved with
      training ones); training and test use up to ``train_frames`` / ``test_frames`` frames (0 = all),
      evenly spaced over the split."""
    check_choice("dataset", dataset, DATASET_NAMES)
    profile = get_profile(profile) if isinstance(profile, str) else profile
    if dataset == "synthetic":
        return _synthetic(profile, convention, size, seed)
    return _real(dataset, profile, convention, size, data_root, seed)


def _synthetic(profile: Profile, convention: str, size: int, seed: int) -> dict[str, Dataset]:
    from handlib.synth.dataset import SyntheticHands  # the renderer: imported only when used

    frames = {"train": profile.train_frames, "val": profile.val_frames, "test": profile.test_frames}
    return {split: SyntheticHands(split=split, n=frames[split], size=size, convention=convention, seed=seed)
            for split in SPLITS}


def _real_splits(dataset: str, data_root: str, size: int, seed: int) -> tuple[Dataset, Dataset]:
    """(training split, test split) of a real dataset, read by handlib.data's loader."""
    if dataset == "nyu":
        from handlib.data.nyu import NYUDataset
        return NYUDataset(data_root, "train", size=size, seed=seed), NYUDataset(data_root, "test", size=size)
    if dataset == "icvl":
        from handlib.data.icvl import ICVLDataset
        return ICVLDataset(data_root, "train", size=size), ICVLDataset(data_root, "test", size=size)
    if dataset == "msra":  # leave-one-subject-out; the papers average all 9 folds, this is fold P0
        from handlib.data.msra import SUBJECTS, MSRADataset
        return (MSRADataset(data_root, subjects=SUBJECTS[1:], size=size),
                MSRADataset(data_root, subjects=SUBJECTS[:1], size=size))
    raise ValueError(f"dataset {dataset!r} has no labelled test split to train and evaluate on "
                     "(the HANDS2017 test labels are not public)")


def _real(dataset: str, profile: Profile, convention: str, size: int, data_root: str,
          seed: int) -> dict[str, Dataset]:
    if convention != dataset:
        raise ValueError(f"dataset {dataset!r} is labelled in joint convention {dataset!r}, "
                         f"not {convention!r}")
    if not data_root:
        raise ValueError(f"dataset {dataset!r} needs data_root (HANDLIB_DATA_ROOT or --data-root): the "
                         "folder holding the downloaded dataset")
    train_full, test = _real_splits(dataset, data_root, size, seed)
    n = len(train_full)
    if profile.val_frames >= n:
        raise ValueError(f"{dataset} training split has {n} frames, not more than val_frames="
                         f"{profile.val_frames} of profile {profile.name!r}")
    train_end = n - profile.val_frames
    train_count = min(train_end, profile.train_frames) if profile.train_frames else train_end
    test_count = min(len(test), profile.test_frames) if profile.test_frames else len(test)
    return {"train": Subset(train_full, _evenly_spaced(train_end, train_count)),
            "val": Subset(train_full, range(train_end, n)),
            "test": Subset(test, _evenly_spaced(len(test), test_count))}


def _evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` indices spread over ``range(total)``: a capped split still covers every subject and
    sequence (NYU's first 2,440 test frames are all one subject)."""
    return [i * total // count for i in range(count)]


def stack_fields(dataset: Dataset, keys: tuple[str, ...], max_frames: int = 4096) -> dict:
    """{key: (N, ...) tensor} of the sample fields ``keys`` over N = up to ``max_frames`` evenly
    spaced frames of ``dataset``, read in one pass."""
    import torch

    samples = [dataset[i] for i in _evenly_spaced(len(dataset), min(len(dataset), max_frames))]
    return {key: torch.stack([sample[key] for sample in samples]) for key in keys}


def joint_statistics(dataset: Dataset, max_frames: int = 4096):
    """Per-coordinate mean and standard deviation, each (J, 3), of the normalised joints
    (``sample["joints"]``) over up to ``max_frames`` evenly spaced frames of ``dataset``."""
    if len(dataset) < 2:
        raise ValueError(f"joint_statistics needs at least 2 frames, the dataset has {len(dataset)}")
    joints = stack_fields(dataset, ("joints",), max_frames)["joints"]
    return joints.mean(0), joints.std(0)
