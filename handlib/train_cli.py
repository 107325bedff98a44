"""``python -m handlib train MODEL`` and ``python -m handlib bench train MODEL``.

The run itself (resolve, train, test, record) is :func:`handlib.runs.train_and_record`. Under
``torchrun`` every process runs it; rank 0 alone prints and writes.

Building the parser imports no torch (``python -m handlib --help`` stays fast): the training modules
are imported by the functions that run.
"""
from __future__ import annotations

import argparse

import json

from handlib.models.registry import ModelChoices
from handlib.dataset_registry import dataset_names
from handlib.errors import UsageError
from handlib.profiles import DATASET_NAMES, PROFILE_NAMES
from handlib.runs import resolve_run, train_and_record

REAL_DATASETS = dataset_names("real")   # handlib.dataset_registry
AMP_MODES = ("auto", "off", "bf16", "fp16")   # = handlib.train.AMP_MODES (tests/test_cli_help.py)


# --- CLI ------------------------------------------------------------------------------------------

def _add_run_options(parser) -> None:
    parser.add_argument("model", choices=ModelChoices(), help="registered model name")
    parser.add_argument("--variant", default=None, help="model variant (default: the paper's full model)")
    parser.add_argument("--dataset", default="synthetic", choices=DATASET_NAMES)
    parser.add_argument("--profile", default="book", choices=PROFILE_NAMES)
    parser.add_argument("--convention", default=None,
                        help="joint convention (default: the dataset's; synthetic: the model's)")
    parser.add_argument("--data-root", default="", help="folder of a downloaded real dataset")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    parser.add_argument("--amp", default="auto", choices=AMP_MODES,
                        help="autocast: auto = bf16 on CUDA, the recipe's precision (fp32 unless a profile says bf16) on CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                        help="NHWC activations (default: faster on CPU, see data/bench/crossinfonet-train)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a registered model and write its results record",
        description="Train MODEL on a dataset at a profile's budget, select on validation, evaluate "
                    "on test, write a results record. Multi-GPU: torchrun --nproc_per_node N -m handlib train ...")
    _add_run_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    p.add_argument("--out", default=None, help="checkpoint folder (default runs/MODEL/VARIANT/DATASET/PROFILE/seedS)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="skip the model's online augmentation (applied by default on real data)")
    p.add_argument("--select", default="best_val", choices=("best_val", "last"),
                   help="weights evaluated on test: best validation epoch or last epoch")
    p.add_argument("--results-dir", default=None,
                   help="where the record goes (default data/results; smoke profile: a temp folder)")
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    from handlib import distributed

    try:
        record, _, _ = train_and_record(
            args.model, variant=args.variant, dataset=args.dataset, profile=args.profile, seed=args.seed,
            epochs=args.epochs, convention=args.convention, out=args.out, resume=args.resume,
            data_root=args.data_root, device=args.device, amp=args.amp, compile=args.compile,
            channels_last=args.channels_last, num_workers=args.workers, selection=args.select,
            results_dir=args.results_dir, augment=args.augment)
        if distributed.current().is_main:
            best = dict(record["best_val"])
            epoch = best.pop("epoch")
            (metric, value), = best.items()          # the spec's selection metric (default mean_error_mm)
            print(f"{record['model']}/{record['variant']} on {record['dataset']} ({record['profile']}, "
                  f"seed {record['seed']}): best val {metric} {value:.4g} at epoch {epoch}, "
                  f"test {record['test']['mean_error_mm']:.2f} mm ({record['selection']} weights), "
                  f"{record['wall_s']:.0f} s on {record['device']}")
            if "path" in record:
                print(f"results record: {record['path']}")
    finally:
        distributed.shutdown()
    return 0


def add_bench(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="training samples/s and the fraction of step time spent waiting for data",
        description="Two short epochs of real training (the first is warm-up); prints the second's "
                    "samples/s and data-wait fraction, at the book profile's batch unless told otherwise.")
    _add_run_options(p)
    p.add_argument("--steps", type=int, default=10, help="timed steps (per epoch)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the profile's recipe batch")
    p.add_argument("--fused-optimizer", action=argparse.BooleanOptionalAction, default=None,
                   help="update all parameters in one fused kernel (default: the profile's recipe)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--profile-ops", action="store_true",
                   help="instead: where one training step's time goes (torch.profiler, grouped: convolutions, "
                        "matmuls, norms, element-wise, casts, optimiser step, data)")
    p.set_defaults(func=run_bench_train, profile="book")     # the batch the committed runs train at


def bench_train(model: str, *, variant=None, dataset="synthetic", profile="book", convention=None,
                data_root="", device=None, amp="auto", compile=False, channels_last=True,
                num_workers=0, steps=10, batch_size=None, progress=False, small_peak=False,
                fused_optimizer: bool | None = None) -> dict:
    """Measured training throughput of a registered model and how close it runs to the machine's peak.

    Two short epochs of real training (the first is warm-up); the second gives ``samples_per_s`` and
    ``data_wait_fraction``. ``train_flops_per_sample`` counts one training step (forward, loss,
    backward) with PyTorch's FLOP counter, and ``roofline_fraction`` = samples/s x that ÷
    ``peak_flops_per_s``, the best of :data:`handlib.models.bench.PEAK_KERNELS` measured in the same
    run in the precision the run computes in (bf16 under bf16 autocast, else fp32), before and after
    the timed epochs (``kernel_flops_per_s`` gives each kernel's rate, ``peak_kernel`` the best)."""
    import torch

    from handlib.device import cpu_has_native_bf16, cpu_name, pick_device, seed_everything
    from handlib.models.bench import measure_peak, merge_peaks
    from handlib.runs import short_run
    from handlib.train import TrainOptions, fit, resolve_amp

    spec, variant, prof, recipe, convention, splits = short_run(
        model, variant, dataset, profile, convention, data_root, steps=steps, epochs=2,
        batch_size=batch_size, fused_optimizer=fused_optimizer)
    seed_everything(0)
    net = spec.build_for(variant, convention, prof)
    flops = train_flops_per_sample(spec, net, splits["train"], recipe.batch_size)
    options = TrainOptions(device=device, amp=amp, compile=compile, channels_last=channels_last,
                           num_workers=num_workers, progress=progress)
    dev = pick_device(device)
    dtype = resolve_amp(amp, dev, recipe.precision)
    before = measure_peak(dev, dtype=dtype, small=small_peak)
    result = fit(net, spec.loss, spec.predict, splits["train"], splits["val"], recipe, options,
                 spec.forward, spec.selection, spec.inference_forward)
    peak = merge_peaks(before, measure_peak(dev, dtype=dtype, small=small_peak))
    timed = result.history[-1]
    return {"model": model, "variant": variant, "dataset": dataset, "batch_size": recipe.batch_size,
            "steps": steps, "amp": amp, "precision": str(dtype or "float32").removeprefix("torch."),
            "fused_optimizer": recipe.fused_optimizer, "threads": torch.get_num_threads(),
            "channels_last": channels_last, "compiled": compile, "device": result.device,
            "cpu": cpu_name() if dev.type == "cpu" else None, "cpu_native_bf16": cpu_has_native_bf16(),
            "samples_per_s": timed["samples_per_s"], "data_wait_fraction": timed["data_wait_fraction"],
            # a clip model's sample is a clip of T frames
            "frames_per_sample": spec.clip_length if spec.input_kind == "clip" else 1,
            "frames_per_s": timed["samples_per_s"] * (spec.clip_length if spec.input_kind == "clip" else 1),
            "train_flops_per_sample": flops, **peak,
            "roofline_fraction": timed["samples_per_s"] * flops / peak["peak_flops_per_s"]}


def run_profile_ops(args) -> int:
    from handlib.step_profile import profile_training_step

    if args.device not in (None, "cpu"):
        raise UsageError(f"--profile-ops profiles the CPU step; got --device {args.device}")
    found = profile_training_step(args.model, variant=args.variant, dataset=args.dataset, profile=args.profile,
                                  convention=args.convention, data_root=args.data_root, amp=args.amp,
                                  channels_last=args.channels_last, steps=min(args.steps, 5),
                                  batch_size=args.batch_size, fused_optimizer=args.fused_optimizer)
    if args.json:
        print(json.dumps(found))
        return 0
    optimiser = "fused" if found["fused_optimizer"] else "per-tensor"
    print(f"{found['model']}/{found['variant']} ({found['profile']}, batch {found['batch_size']}, "
          f"{found['precision']}, {optimiser} optimiser, {found['threads']} thread(s)): "
          f"{found['step_ms']:.0f} ms per step")
    for group, share in found["groups"].items():
        print(f"  {group:<24} {100 * share:5.1f} %")
    print("  top operators (ms per step):")
    for op in found["top_ops"]:
        print(f"    {op['op']:<40} {op['ms_per_step']:8.1f}  {100 * op['share']:5.1f} %")
    return 0


def train_flops_per_sample(spec, net, train_set, batch_size: int) -> int:
    """FLOPs of one training step (forward, loss, backward) per sample, counted by PyTorch's FLOP
    counter on a batch of ``train_set`` (2 FLOPs per multiply-accumulate; convolutions and matmuls),
    plus the recurrent layers it cannot see (:func:`handlib.models.summary.recurrent_flops`)."""
    from torch.utils.data import default_collate
    from torch.utils.flop_counter import FlopCounterMode

    from handlib.models.summary import recurrent_flops

    batch = default_collate([train_set[i % len(train_set)] for i in range(batch_size)])
    was_training = net.training
    net.train()
    counter = FlopCounterMode(display=False)
    with counter, recurrent_flops(net, counter) as recurrent:
        spec.loss(spec.forward(net, batch), batch)["total"].backward()
    net.zero_grad(set_to_none=True)
    net.train(was_training)
    return (counter.get_total_flops() + recurrent[0]) // batch_size


def run_bench_train(args) -> int:
    if args.profile_ops:
        return run_profile_ops(args)
    figures = bench_train(args.model, variant=args.variant, dataset=args.dataset, profile=args.profile,
                          convention=args.convention, data_root=args.data_root, device=args.device,
                          amp=args.amp, compile=args.compile, channels_last=args.channels_last,
                          num_workers=args.workers, steps=args.steps, batch_size=args.batch_size,
                          fused_optimizer=args.fused_optimizer)
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{figures['model']}/{figures['variant']}, batch {figures['batch_size']}, {figures['device']}, "
              f"{figures['precision']}: {figures['samples_per_s']:.1f} samples/s, "
              f"{100 * figures['data_wait_fraction']:.1f}% of step time waiting for data")
        print(f"  {figures['train_flops_per_sample'] / 1e9:.2f} GFLOP per training sample; "
              f"{figures['precision']} peak {figures['peak_flops_per_s'] / 1e9:.1f} GFLOP/s "
              f"({figures['peak_kernel']}); "
              f"roofline fraction {figures['roofline_fraction']:.2f}")
    return 0
