"""``python -m handlib render`` (write synthetic frames to an npz) and ``bench render``.

numpy, torch and the renderer are imported by the commands: building the parser stays light.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from handlib.joints import CONVENTIONS

BENCH_SIZES = (96, 128)
DOMAINS = ("synthetic", "real-like")   # = handlib.synth.poses.DOMAINS (tests/test_cli_help.py)


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "render", help="render synthetic depth hands to an .npz file",
        description="Render N synthetic (or real-like) depth-hand crops and write them as an npz "
                    "with arrays depth (normalised, N x S x S), depth_mm, joints_xyz, joints_uvd, "
                    "joints (normalised), joints_crop, visible, parts, com, cube, transform.")
    p.add_argument("--n", type=int, required=True, help="number of frames")
    p.add_argument("--size", type=int, default=96, help="crop size in pixels (default 96)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train", help="random stream name (default train)")
    p.add_argument("--domain", choices=DOMAINS, default="synthetic")
    p.add_argument("--joints", choices=sorted(CONVENTIONS), default="full",
                   help="joint convention of the exported joints (default full = canonical 21)")
    p.add_argument("--cube", type=float, default=250.0, help="crop cube size in mm (default 250)")
    p.add_argument("--out", required=True, help="output .npz file")
    p.set_defaults(func=_run_render)


def _run_render(args) -> int:
    import numpy as np

    from handlib.errors import UsageError
    from handlib.fileio import atomic_write
    from handlib.synth.dataset import SyntheticHands

    out = Path(args.out)
    if out.suffix != ".npz":
        raise UsageError(f"--out must name a .npz file, got {args.out!r}")
    if not out.parent.is_dir():
        raise UsageError(f"--out directory {str(out.parent)!r} does not exist")
    try:
        ds = SyntheticHands(args.split, args.n, size=args.size, domain=args.domain,
                            convention=args.joints, seed=args.seed, cube=args.cube)
    except ValueError as err:
        raise UsageError(str(err)) from None
    batch = ds.batch(range(args.n))
    arrays = {
        "depth": batch["depth"][:, 0].numpy(),
        "depth_mm": ds.depth_mm(range(args.n)).numpy(),
        **{k: batch[k].numpy() for k in ("joints_xyz", "joints_uvd", "joints", "joints_crop",
                                         "visible", "com", "cube", "transform")},
        "parts": batch["parts"].numpy().astype(np.uint8),
    }
    atomic_write(out, lambda f: np.savez_compressed(f, **arrays), fsync=False)  # never half-written
    print(f"wrote {args.n} frames ({args.size}x{args.size}, {args.domain}, joints {args.joints}) to {out}")
    return 0


def add_bench(subparsers) -> None:
    p = subparsers.add_parser(
        "render", help="synthetic renderer throughput (frames/s)",
        description="Frames per second for complete samples at sizes 96 and 128 in both domains, "
                    "batch 256, one single-threaded process per core.")
    p.add_argument("--json", action="store_true", help="print a JSON list of {size, domain, frames_per_s}")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="batches per process per setting")
    p.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    p.add_argument("--dataset-frames", type=int, default=0,
                   help="also time building and caching a dataset of this many 96x96 frames")
    p.set_defaults(func=_run_bench)


def _bench_job(size: int, domain: str, batch: int, repeats: int, worker: int) -> int:
    import torch

    from handlib.synth.frames import render_frames

    for r in range(repeats):
        start = (worker * repeats + r) * batch
        render_frames(torch.arange(start, start + batch), seed=0, split="bench", domain=domain, size=size)
    return batch * repeats


def _run_bench(args) -> int:
    from concurrent.futures import ProcessPoolExecutor

    from handlib.errors import UsageError
    from handlib.synth.dataset import init_worker, worker_context

    if args.batch <= 0 or args.repeats <= 0 or args.workers < 0:
        raise UsageError("--batch and --repeats must be positive and --workers >= 0")
    workers = args.workers or os.cpu_count() or 1
    results = []
    with ProcessPoolExecutor(workers, mp_context=worker_context(), initializer=init_worker) as pool:
        # Warm-up: imports and first-call overheads are not throughput.
        list(pool.map(_bench_job, [96] * workers, ["real-like"] * workers, [8] * workers,
                      [1] * workers, range(workers)))
        for size in BENCH_SIZES:
            for domain in DOMAINS:
                t0 = time.perf_counter()
                frames = sum(pool.map(_bench_job, [size] * workers, [domain] * workers,
                                      [args.batch] * workers, [args.repeats] * workers, range(workers)))
                elapsed = time.perf_counter() - t0
                results.append({"size": size, "domain": domain, "frames_per_s": round(frames / elapsed, 1)})
    if args.dataset_frames > 0:
        from handlib.synth.dataset import SyntheticHands
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            SyntheticHands("bench", args.dataset_frames, size=96, cache_dir=tmp, workers=workers,
                           progress=not args.json)
            build = time.perf_counter() - t0
            size_mb = sum(f.stat().st_size for f in Path(tmp).rglob("*.npz")) / 2**20
        results.append({"size": 96, "domain": "synthetic", "dataset_frames": args.dataset_frames,
                        "build_s": round(build, 1), "cache_mb": round(size_mb, 1)})
    if args.json:
        print(json.dumps(results))
    else:
        print(f"handlib.synth render throughput: batch {args.batch}, {workers} single-threaded "
              f"processes, {os.cpu_count()} cores visible, load average {os.getloadavg()[0]:.1f}")
        for row in results:
            if "frames_per_s" in row:
                print(f"  {row['size']:>4}x{row['size']:<4} {row['domain']:<10} {row['frames_per_s']:>8.1f} frames/s")
            else:
                print(f"  dataset of {row['dataset_frames']} frames (96x96): built and cached in "
                      f"{row['build_s']} s, {row['cache_mb']} MB")
    return 0
