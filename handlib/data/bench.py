"""``python -m handlib bench preprocess``: frames/s of the batched crop and the online augmentation.

Input: random "hands" (disks around random joints) in full 640x480 NYU frames, float32 depth in mm,
on the chosen device. Figures are the best of ``--repeats`` timed calls after a warm-up (median
beside it); the machine's other load makes single timings noisy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

import json
import statistics
import time

from handlib.errors import UsageError

# torch and the preprocessing modules are imported by the functions: building the parser stays light.


def add_bench(subparsers) -> None:
    p = subparsers.add_parser("preprocess", help="crop + augmentation frames/s",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64, help="frames per call (default 64)")
    p.add_argument("--size", type=int, default=96, help="crop size in pixels (default 96)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", help="cpu, cuda, ... (default: CUDA when present, else CPU)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_bench)


def _frames(batch: int, device: torch.device, joints: int = 14, radius: float = 12.0):
    """(B, 480, 640) depth with one blob per joint and the (B, J, 3) uvd joints."""
    import torch

    g = torch.Generator().manual_seed(0)
    centre = torch.tensor([320.0, 240.0, 600.0]) + torch.randn(batch, 1, 3, generator=g) * torch.tensor([60.0, 40.0, 80.0])
    uvd = (centre + torch.randn(batch, joints, 3, generator=g) * torch.tensor([30.0, 30.0, 15.0])).to(device)
    rows = torch.arange(480, device=device, dtype=torch.float32).view(1, 480, 1)
    cols = torch.arange(640, device=device, dtype=torch.float32).view(1, 1, 640)
    depth = torch.zeros(batch, 480, 640, device=device)
    for j in range(joints):   # one vectorised disk per joint, not a pixel loop
        inside = (cols - uvd[:, j, 0, None, None]) ** 2 + (rows - uvd[:, j, 1, None, None]) ** 2 <= radius ** 2
        depth = torch.where(inside & ((depth == 0) | (depth > uvd[:, j, 2, None, None])),
                            uvd[:, j, 2, None, None], depth)
    return depth, uvd


def _time(fn, device, repeats, desc):
    import torch
    from tqdm.auto import tqdm

    fn()
    seconds = []
    for _ in tqdm(range(repeats), desc=desc, leave=False):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def run_bench(args) -> int:
    import torch

    from handlib.data.augment import AugmentConfig, augment_batch
    from handlib.data.crop import crop_batch
    from handlib.device import describe_device, pick_device
    from handlib.geometry import get_camera

    if args.batch <= 0 or args.size <= 0 or args.repeats <= 0:
        raise UsageError("--batch, --size and --repeats must be positive integers")
    try:
        device = pick_device(args.device)
    except ValueError as err:
        raise UsageError(str(err)) from None
    cam = get_camera("nyu")
    depth, uvd = _frames(args.batch, device)
    com = uvd.mean(dim=1)
    cube = torch.full((args.batch, 3), 250.0, device=device)
    sample = crop_batch(depth, uvd, com, cube, cam, args.size)
    generator = torch.Generator().manual_seed(0)
    timings = {
        "crop": _time(lambda: crop_batch(depth, uvd, com, cube, cam, args.size), device, args.repeats, "crop"),
        "augment": _time(lambda: augment_batch(sample, cam, AugmentConfig(), generator), device,
                         args.repeats, "augment"),
    }
    result = {"device": describe_device(device), "batch": args.batch, "size": args.size}
    for name, secs in timings.items():
        result[f"{name}_frames_per_s_best"] = args.batch / min(secs)
        result[f"{name}_frames_per_s_median"] = args.batch / statistics.median(secs)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"device: {result['device']}, batch {args.batch}, crop {args.size}x{args.size}")
        for name in timings:
            print(f"  {name:<8} {result[f'{name}_frames_per_s_best']:10.0f} frames/s best"
                  f"  ({result[f'{name}_frames_per_s_median']:.0f} median)")
    return 0
