"""One entry point from (dataset, profile) to train / val / test torch Datasets of sample dicts.

The synthetic hands come from ``handlib.synth``, the real datasets from ``handlib.data``; both are
imported only when asked for, so training code does not pull in a renderer it does not use.
Validation is always a held-out split separate from test: model selection never sees test frames.
What each dataset is (its loader, conventions, sequences, part labels) is read from
``handlib.dataset_registry``.

With ``clip_length=T`` the splits yield clips: the frame sample's fields stacked on a new leading
time axis (``depth`` (T, 1, S, S), ``joints`` / ``joints_xyz`` / ``joints_uvd`` / ``joints_crop``
(T, J, 3), ``com`` / ``cube`` (T, 3), ``transform`` (T, 3, 3), ``visible`` (T, J), ``parts``
(T, S, S), ``parts_trainable`` (T,)) plus ``index`` () the clip's index in its split, ``frame`` (T,)
the frames' indices (real data: in the loader, consecutive; synthetic: 0 .. T-1 of the clip's own
rendered sequence), ``sequence`` () and ``start`` () (the first frame's index).
"""
from __future__ import annotations

from bisect import bisect_right

import torch
from torch.utils.data import Dataset, Subset

from handlib.dataset_registry import DatasetInfo, dataset_names, get_dataset
from handlib.sample import evenly_spaced as _evenly_spaced, stack_fields
from handlib.profiles import Profile, get_profile

SPLITS = ("train", "val", "test")


TEST_CLIPS = ("windows", "concatenated")


def build_datasets(dataset: str, profile: str | Profile, convention: str, size: int, seed: int,
                   data_root: str = "", *, clip_length: int | None = None, clip_stride: int = 1,
                   test_clips: str = "windows", part_labels: bool = False) -> dict[str, Dataset]:
    """{"train", "val", "test"} Datasets yielding handlib.sample dicts, sized by ``profile``.

    * ``synthetic``: three disjoint rendered splits (the renderer seeds each split separately);
      ``real-like``: the same in the renderer's real-like domain (sensor-corrupted, other hand shapes).
    * real datasets: the official test split; validation is the last ``val_frames`` frames of the
      training split (a contiguous tail, so mostly whole sequences, not frames interleaved with
      training ones); training and test use up to ``train_frames`` / ``test_frames`` frames (0 = all),
      evenly spaced over the split.

    ``clip_length=T`` yields clips of T consecutive frames (see the module docstring), and the
    profile's ``train_frames`` / ``val_frames`` / ``test_frames`` count clips:

    * ``synthetic``: that many independently rendered smooth clips per split
      (``handlib.synth.dataset.SyntheticClips``, cached like the frames).
    * real datasets: windows of T consecutive frames inside one sequence of the loader
      (``loader.sequences()``), never across a boundary, starting every ``clip_stride`` frames of
      a sequence (1: every window; T: non-overlapping clips); validation is the last ``val_frames``
      windows of the training split, training the windows that end before validation begins; a
      cap keeps evenly spaced window starts (the frames inside a window stay consecutive).
      ``test_clips="concatenated"`` instead cuts the test split, its sequences concatenated, into
      non-overlapping clips as CADSTN's code does (:class:`PaddedClips`: one clip may straddle a
      boundary; the last is padded and its padding marked ``valid`` False, never scored).

    Every sample carries ``parts`` (-1 where unknown); ``part_labels=True`` requires a dataset whose
    ``parts`` are real per-pixel part labels (ValueError naming the dataset otherwise)."""
    info = get_dataset(dataset)
    profile = get_profile(profile) if isinstance(profile, str) else profile
    if clip_length is not None and (not isinstance(clip_length, int) or isinstance(clip_length, bool)
                                    or clip_length < 1):
        raise ValueError(f"clip_length must be None (frames) or a positive integer, got {clip_length!r}")
    if not isinstance(clip_stride, int) or clip_stride < 1:
        raise ValueError(f"clip_stride must be a positive integer, got {clip_stride!r}")
    check_test_clips(test_clips)
    if part_labels and not info.part_labels:
        raise ValueError(f"dataset {dataset!r} ({info.title}) has no per-pixel part labels; datasets "
                         f"with part labels: {', '.join(dataset_names('part_labels'))}")
    if info.synthetic:
        return _synthetic(info, profile, convention, size, seed, clip_length)
    return _real(info, profile, convention, size, data_root, seed, clip_length, clip_stride, test_clips)


def _counts(profile: Profile) -> dict[str, int]:
    return {"train": profile.train_frames, "val": profile.val_frames, "test": profile.test_frames}


def _synthetic(info: DatasetInfo, profile: Profile, convention: str, size: int, seed: int,
               clip_length: int | None) -> dict[str, Dataset]:
    counts = _counts(profile)
    bench_length = profile.extra.get("bench_clip_length")
    if bench_length:      # the one bench: counts are frames, every split rendered as clips of bench_length
        if clip_length not in (None, bench_length):
            raise ValueError(f"profile {profile.name!r} renders clips of {bench_length} frames; a network "
                             f"reading clips of {clip_length} cannot share its frames")
        per_clip = 1 if clip_length else bench_length   # clip networks' counts are already of clips
        clips = info.load(clips=True)
        made = {split: clips(split=split, n=max(1, counts[split] // per_clip), frames=bench_length, size=size,
                             domain=info.domain, convention=convention, seed=seed) for split in SPLITS}
        return made if clip_length else {split: FramesOfClips(made[split]) for split in SPLITS}
    if clip_length is None:
        frames = info.load()  # the renderer: imported only when used
        return {split: frames(split=split, n=counts[split], size=size, domain=info.domain,
                              convention=convention, seed=seed) for split in SPLITS}
    clips = info.load(clips=True)
    return {split: clips(split=split, n=counts[split], frames=clip_length, size=size, domain=info.domain,
                         convention=convention, seed=seed) for split in SPLITS}


def _real_splits(info: DatasetInfo, data_root: str, size: int, seed: int) -> tuple[Dataset, Dataset]:
    """(training split, test split) of a real dataset, read by its registered loader."""
    if not info.labelled_test:
        raise ValueError(f"dataset {info.name!r} has no labelled test split to train and evaluate on "
                         f"(the {info.title} test labels are not public)")
    loader = info.load()
    return (loader.for_split(data_root, "train", size=size, seed=seed),
            loader.for_split(data_root, "test", size=size, seed=seed))


def check_test_clips(test_clips: str) -> str:
    if test_clips not in TEST_CLIPS:
        raise ValueError(f"test_clips must be one of {', '.join(TEST_CLIPS)}, got {test_clips!r}")
    return test_clips


def _real(info: DatasetInfo, profile: Profile, convention: str, size: int, data_root: str,
          seed: int, clip_length: int | None, clip_stride: int = 1,
          test_clips: str = "windows") -> dict[str, Dataset]:
    dataset = info.name
    if convention not in info.conventions:
        raise ValueError(f"dataset {dataset!r} is labelled in joint convention {info.convention!r}, "
                         f"not {convention!r}")
    if not data_root:
        raise ValueError(f"dataset {dataset!r} needs data_root (HANDLIB_DATA_ROOT or --data-root): the "
                         "folder holding the downloaded dataset")
    train_full, test = _real_splits(info, data_root, size, seed)
    if clip_length is not None:
        return _real_clips(dataset, train_full, test, profile, clip_length, clip_stride, test_clips)
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


def _real_clips(dataset: str, train_full, test, profile: Profile, length: int, stride: int = 1,
                test_clips: str = "windows") -> dict[str, Dataset]:
    """Clips of ``length`` consecutive frames of a real dataset (see :func:`build_datasets`)."""
    starts = window_starts(_sequences(train_full), length, stride)
    if profile.val_frames >= len(starts):
        raise ValueError(f"{dataset} training split has {len(starts)} windows of {length} consecutive "
                         f"frames, not more than val_frames={profile.val_frames} of profile {profile.name!r}")
    val_starts = starts[len(starts) - profile.val_frames:]
    train_starts = [s for s in starts if s + length <= val_starts[0]]   # no frame shared with val
    if not train_starts:
        raise ValueError(f"{dataset} training split has no window of {length} consecutive frames before its "
                         f"last {profile.val_frames} (validation)")
    if test_clips == "concatenated":       # every test frame, in clips over the sequences concatenated
        padded = PaddedClips(test, length)
        kept = _cap(list(range(len(padded))), profile.test_frames)
        test_split = padded if len(kept) == len(padded) else Subset(padded, kept)
    else:
        test_starts = window_starts(_sequences(test), length, stride)
        if not test_starts:
            raise ValueError(f"{dataset} test split has no window of {length} consecutive frames")
        test_split = ClipDataset(test, _cap(test_starts, profile.test_frames), length)
    return {"train": ClipDataset(train_full, _cap(train_starts, profile.train_frames), length),
            "val": ClipDataset(train_full, val_starts, length), "test": test_split}


def _cap(starts: list[int], count: int) -> list[int]:
    """Up to ``count`` (0 = all) evenly spaced window starts."""
    if not count or count >= len(starts):
        return starts
    return [starts[i] for i in _evenly_spaced(len(starts), count)]


def _sequences(frames) -> list[tuple[int, int]]:
    """The frame dataset's ``(start, stop)`` sequences (``sequences()``; without one: one sequence)."""
    return frames.sequences() if hasattr(frames, "sequences") else [(0, len(frames))]


def window_starts(sequences, length: int, stride: int = 1) -> list[int]:
    """First frames of the windows of ``length`` consecutive frames inside one of ``sequences``
    (``(start, stop)`` ranges), one every ``stride`` frames from each sequence's start, in order."""
    return [s for start, stop in sequences for s in range(start, stop - length + 1, stride)]


class ClipDataset(Dataset):
    """Clips of ``length`` consecutive frames of any frame dataset: item ``i`` stacks frames
    ``starts[i] .. starts[i] + length - 1`` (fields on a new leading time axis, keys as in the module
    docstring). A window that crosses a boundary of ``frames.sequences()`` is refused."""

    def __init__(self, frames: Dataset, starts, length: int):
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"clip length must be a positive integer, got {length!r}")
        self.frames, self.starts, self.length = frames, [int(s) for s in starts], length
        bounds = _sequences(frames)
        firsts = [start for start, _ in bounds]
        self.sequence_ids = []
        for s in self.starts:
            k = bisect_right(firsts, s) - 1
            if k < 0 or s + length > bounds[k][1]:
                where = f"sequence {k} (frames {bounds[k][0]}..{bounds[k][1] - 1})" if k >= 0 else "the data"
                raise ValueError(f"a clip of {length} frames starting at frame {s} does not fit in {where}")
            self.sequence_ids.append(k)

    def __len__(self) -> int:
        return len(self.starts)

    def frame_sample(self, clip: int, step: int) -> dict:
        """Frame ``step`` of clip ``clip`` as the frame dataset gives it."""
        return self.frames[self.starts[clip] + step]

    def __getitem__(self, index: int) -> dict:
        start = self.starts[index]
        samples = [self.frames[start + t] for t in range(self.length)]
        clip = {key: torch.stack([sample[key] for sample in samples]) for key in samples[0]}
        clip["frame"] = torch.arange(start, start + self.length)
        clip["index"] = torch.tensor(index % len(self), dtype=torch.int64)
        clip["sequence"] = torch.tensor(self.sequence_ids[index], dtype=torch.int64)
        clip["start"] = torch.tensor(start, dtype=torch.int64)
        return clip




class PaddedClips(Dataset):
    """Non-overlapping clips of ``length`` frames over all of ``frames`` in order, sequences concatenated
    (CADSTN's test clips over NYU's test_1 + test_2: one clip straddles the boundary). The last clip is
    padded by repeating the final frame; ``valid`` (T,) is False on the padding, which
    :func:`handlib.train.predict_xyz` drops before scoring. Keys as :class:`ClipDataset`'s."""

    def __init__(self, frames: Dataset, length: int):
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"clip length must be a positive integer, got {length!r}")
        if len(frames) == 0:
            raise ValueError("PaddedClips needs at least one frame")
        self.frames, self.length = frames, length

    def __len__(self) -> int:
        return -(-len(self.frames) // self.length)

    def valid_length(self, clip: int) -> int:
        """How many of clip ``clip``'s frames are real (the rest is padding)."""
        return min(self.length, len(self.frames) - clip * self.length)

    def frame_sample(self, clip: int, step: int) -> dict:
        return self.frames[min(clip * self.length + step, len(self.frames) - 1)]

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"clip {index} out of range for {len(self)} clips")
        index %= len(self)
        start = index * self.length
        samples = [self.frame_sample(index, t) for t in range(self.length)]
        clip = {key: torch.stack([sample[key] for sample in samples]) for key in samples[0]}
        clip["frame"] = torch.arange(start, start + self.length).clamp(max=len(self.frames) - 1)
        clip["valid"] = torch.arange(self.length) < self.valid_length(index)
        clip["index"] = torch.tensor(index, dtype=torch.int64)
        clip["sequence"] = torch.tensor(0, dtype=torch.int64)      # the concatenation is one sequence
        clip["start"] = torch.tensor(start, dtype=torch.int64)
        return clip


class FramesOfClips(Dataset):
    """The frames of a clip dataset one by one, clip-major (frame ``t`` of clip ``c`` is item
    ``c * T + t`` when no clip is padded), with the frame dataset's keys plus ``clip`` and ``step``; a
    padded clip's padding is left out. A paper with frame and clip networks trains and tests both on
    the same frames, in the same order as the clip networks' scored predictions
    (``handlib.train.predict_xyz``)."""

    def __init__(self, clips: Dataset):
        indices = None
        if isinstance(clips, Subset):         # a capped split: the chosen clips of the full one
            clips, indices = clips.dataset, list(clips.indices)
        if not hasattr(clips, "frame_sample"):
            raise TypeError(f"{type(clips).__name__} cannot give single frames of its clips (no frame_sample)")
        self.clips = clips
        indices = range(len(clips)) if indices is None else indices
        length = clips[0]["depth"].shape[0] if len(clips) else 0
        valid = getattr(clips, "valid_length", lambda clip: length)
        # (clip, step) of every real frame (a padded clip's padding is not a frame)
        self.frames = [(c, t) for c in indices for t in range(valid(c))]

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"frame {index} out of range for {len(self)} frames")
        index %= len(self)
        clip, step = self.frames[index]
        sample = dict(self.clips.frame_sample(clip, step))
        sample["index"] = torch.tensor(index, dtype=torch.int64)
        sample["clip"] = torch.tensor(clip, dtype=torch.int64)
        sample["step"] = torch.tensor(step, dtype=torch.int64)
        return sample


def joint_statistics(dataset: Dataset, max_frames: int = 4096):
    """Per-coordinate mean and standard deviation, each (J, 3), of the normalised joints
    (``sample["joints"]``) over up to ``max_frames`` evenly spaced frames of ``dataset``."""
    if len(dataset) < 2:
        raise ValueError(f"joint_statistics needs at least 2 frames, the dataset has {len(dataset)}")
    joints = stack_fields(dataset, ("joints",), max_frames)["joints"]
    return joints.mean(0), joints.std(0)
