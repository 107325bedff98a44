"""The one sample structure every dataset yields (synthetic and real alike).

A sample is a plain ``dict`` of tensors so ``torch.utils.data.default_collate`` batches it.
Shapes are per sample (S = crop size, J = joints of the convention):

=================  ==============  ==========================================================
key                shape / dtype   meaning
=================  ==============  ==========================================================
``depth``          (1, S, S) f32   normalised crop in [-1, 1], background +1
``joints``         (J, 3) f32      normalised joints (xyz - com) / (cube / 2)
``joints_xyz``     (J, 3) f32      camera-frame mm
``joints_uvd``     (J, 3) f32      full-image pixels + mm (the dataset's intrinsics)
``joints_crop``    (J, 3) f32      crop pixels (u, v) + normalised depth
``com``            (3,) f32        crop centre, camera mm
``cube``           (3,) f32        cube size, mm
``transform``      (3, 3) f32      full image -> crop pixels (DeepPrior's M)
``visible``        (J,) bool       joint visible in the crop (real data: all True)
``parts``          (S, S) i64      part label map, -1 where unknown (real data: all -1)
``parts_trainable`` () bool        whether ``parts`` may be used as a training target
``index``          () i64          frame index within its dataset
=================  ==============  ==========================================================

The dataset object carries the joint convention (``dataset.convention``) and camera.
"""
from __future__ import annotations

SAMPLE_KEYS = (
    "depth", "joints", "joints_xyz", "joints_uvd", "joints_crop", "com", "cube",
    "transform", "visible", "parts", "parts_trainable", "index",
)


def check_sample(sample: dict, size: int, num_joints: int) -> None:
    """Raise ValueError naming the first key that is missing or has the wrong shape."""
    expected = {
        "depth": (1, size, size), "joints": (num_joints, 3), "joints_xyz": (num_joints, 3),
        "joints_uvd": (num_joints, 3), "joints_crop": (num_joints, 3), "com": (3,), "cube": (3,),
        "transform": (3, 3), "visible": (num_joints,), "parts": (size, size),
        "parts_trainable": (), "index": (),
    }
    for key, shape in expected.items():
        if key not in sample:
            raise ValueError(f"sample is missing key {key!r}")
        got = tuple(sample[key].shape)
        if got != shape:
            raise ValueError(f"sample[{key!r}] has shape {got}, expected {shape}")


def evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` indices spread over ``range(total)``: a capped split still covers every subject and
    sequence (NYU's first 2,440 test frames are all one subject)."""
    return [i * total // count for i in range(count)]


def stack_fields(dataset, keys: tuple[str, ...], max_frames: int = 4096) -> dict:
    """{key: (N, ...) tensor} of the sample fields ``keys`` over N = up to ``max_frames`` evenly
    spaced samples of ``dataset``, read in one pass."""
    import torch

    samples = [dataset[i] for i in evenly_spaced(len(dataset), min(len(dataset), max_frames))]
    return {key: torch.stack([sample[key] for sample in samples]) for key in keys}
