"""``python -m handlib bench infer MODEL``: inference frames/s, the roofline fraction and, given trained
weights, the test error through the graph that was timed.

The timing itself is :func:`handlib.models.bench.benchmark_inference`; this module adds the command line
and :func:`timed_graph_error`, which needs the data and the training code. Building the parser imports
no torch.
"""
from __future__ import annotations

import copy
import json

from handlib.models.registry import ModelChoices
from handlib.models.summary import CONVENTION_CHOICES
from handlib.models.bench import PRECISIONS


def timed_graph_error(model_name: str, variant: str | None, weights: str, *, precision: str = "fp32",
                      compile: bool = False, fuse: bool = True, channels_last: bool = True, profile: str = "book",
                      dataset: str = "synthetic", convention: str | None = None, data_root: str = "",
                      batch_size: int = 1) -> dict:
    """Test error of trained ``weights`` evaluated through the graph :func:`benchmark_inference` times
    (BatchNorm folded, channels-last, ``precision``, compiled or not) at ``batch_size``, beside the
    error of the network as trained (fp32, unfused: what the run's record reports), on the profile's
    test split. Both in mm; the difference is what the faster graph costs in accuracy."""
    import torch
    from torch.utils._pytree import tree_map

    from handlib.errors import UsageError
    from handlib.models.bench import compile_context, cast_inputs, inference_dtype, prepare_for_inference
    from handlib.metrics import joint_errors, mean_error
    from handlib.runs import load_splits, resolve_run
    from handlib.train import load_weights, predict_xyz

    spec, variant, prof, _, convention = resolve_run(model_name, variant, dataset, profile, convention, None)
    if spec.upstreams:
        raise UsageError(f"--weights: {model_name} ({variant}) runs on the output of an earlier stage; "
                         "the accuracy check takes one-stage networks")
    dtype = inference_dtype(precision)
    test = load_splits(spec, dataset, prof, convention, data_root)["test"]
    trained = spec.build_for(variant, convention, prof)
    load_weights(trained, weights, {"model": spec.name, "variant": variant})
    cpu = torch.device("cpu")
    graph = prepare_for_inference(copy.deepcopy(trained), cpu, fuse=fuse, channels_last=channels_last).to(dtype)
    if compile:
        graph = torch.compile(graph, dynamic=False)
    infer = spec.inference_forward

    def timed(net, batch):
        out = infer(net, cast_inputs(batch, dtype))
        return tree_map(lambda t: t.float() if torch.is_tensor(t) and t.is_floating_point() else t, out)

    with torch.inference_mode(), compile_context(compile):
        fast = predict_xyz(graph, spec.predict, test, forward=timed, batch_size=batch_size,
                           channels_last=channels_last)
        as_trained = predict_xyz(trained.eval(), spec.predict, test, forward=infer, batch_size=64)
    fast_error, trained_error = (mean_error(joint_errors(*p)) for p in (fast, as_trained))
    return {"test_mean_error_mm": fast_error, "trained_test_mean_error_mm": trained_error,
            "accuracy_cost_mm": fast_error - trained_error, "test_frames": int(fast[0].shape[0]),
            "accuracy_batch_size": batch_size}


def run_bench_infer(args) -> int:
    import torch

    from handlib.errors import UsageError
    from handlib.device import pick_device
    from handlib.models.bench import benchmark_inference
    from handlib.models.registry import get_model_spec

    spec = get_model_spec(args.model)
    if args.variant is not None and args.variant not in spec.variants:
        raise UsageError(f"--variant {args.variant!r} is not a variant of {args.model}; "
                         f"expected one of {list(spec.variants)}")
    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    try:
        device = pick_device(args.device)
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None
    if args.weights is not None:
        from pathlib import Path

        if device.type != "cpu":
            raise UsageError(f"--weights checks accuracy on the CPU; got --device {args.device}")
        if not Path(args.weights).is_file():
            raise UsageError(f"--weights {args.weights}: no such file (expected a best.pt of a training run)")
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        raise UsageError(f"--batch-sizes must be positive integers, got {args.batch_sizes}")
    result = benchmark_inference(args.model, args.variant, args.dataset, batch_sizes=tuple(args.batch_sizes),
                                 repeats=args.repeats,
                                 device=device, fuse=not args.no_fuse,
                                 channels_last=not args.no_channels_last, compile=args.compile,
                                 profile=args.profile, precision=args.precision)
    if args.weights is not None:
        result.update(timed_graph_error(args.model, result["variant"], args.weights, precision=args.precision,
                                        compile=args.compile, fuse=not args.no_fuse,
                                        channels_last=not args.no_channels_last,
                                        profile=args.profile or "book", convention=args.dataset))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['model']} ({result['variant']}) on {result['device']}: {result['precision']}, fused BN "
          f"{result['fused_bn']}, channels_last {result['channels_last']}, "
          f"compiled {result['compiled']}")
    print(f"  FLOPs / frame (timed graph) {result['flops_per_frame'] / 1e9:.3f} G")
    rates = ", ".join(f"{name} {rate / 1e9:.1f}" for name, rate in result["kernel_flops_per_s"].items())
    print(f"  {result['precision']} peak                   {result['peak_flops_per_s'] / 1e9:.1f} GFLOP/s "
          f"({result['peak_kernel']}; {rates} GFLOP/s)")
    for batch in args.batch_sizes:
        clips = (f" ({result[f'frames_b{batch}'] // result['frames_per_sample']} clip(s) of "
                 f"{result['frames_per_sample']} frames)" if result["frames_per_sample"] > 1 else "")
        print(f"  batch {batch:>2}{clips}: {result[f'fps_b{batch}']:8.1f} frames/s (median "
              f"{result[f'fps_b{batch}_median']:.1f}), roofline fraction "
              f"{result[f'roofline_fraction_b{batch}']:.3f}")
    if "accuracy_cost_mm" in result:
        print(f"  test error through this graph (batch {result['accuracy_batch_size']}) "
              f"{result['test_mean_error_mm']:.3f} mm, as trained {result['trained_test_mean_error_mm']:.3f} mm "
              f"({result['accuracy_cost_mm']:+.3f} mm, {result['test_frames']} test frames)")
    print("  (best of the timed calls; other work on a shared machine lowers these figures)")
    return 0


def add_bench(subparsers) -> None:
    parser = subparsers.add_parser(
        "infer", help="inference frames/s at batch 1 and 64, and the roofline fraction",
        description="Time a registered model's inference graph (fused BN, channels-last) and "
                    "compare its FLOP rate with the machine's peak in the same precision, measured in the same run "
                    "(the best of a square matmul and 3x3 / 1x1 channels-last convolutions).")
    parser.add_argument("model", choices=ModelChoices(), help="registered model name")
    parser.add_argument("--variant", default=None, help="model variant (default: the paper's)")
    parser.add_argument("--dataset", choices=CONVENTION_CHOICES, default="nyu",
                        help="joint convention that sets the head sizes (default nyu)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64],
                        help="batch sizes to time (default 1 64; each is one compile under --compile)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed calls at batch 64 (10x as many at batch 1; default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: best)")
    parser.add_argument("--profile", choices=("smoke", "book", "full"), default=None,
                        help="build the network at this profile's sizes (default: the paper's)")
    parser.add_argument("--no-fuse", action="store_true", help="keep BatchNorm unfused")
    parser.add_argument("--no-channels-last", action="store_true", help="keep NCHW layout")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile with Inductor freezing (slow to start, faster to run)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="weights and inputs in this precision (default fp32)")
    parser.add_argument("--weights", default=None,
                        help="a trained best.pt: also report the test error through the timed graph "
                             "beside the network's as trained (the profile's test split, default book)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_bench_infer)
