"""``python -m handlib bench infer MODEL``: inference frames/s and the roofline fraction.

roofline fraction = frames/s × FLOPs per frame ÷ the machine's peak, measured in the same run on
the same device in the same precision: the best FLOP/s of three dense kernels (:data:`PEAK_KERNELS`:
a square matmul, a 3×3 and a 1×1 channels-last convolution), since on a CPU the library that runs
convolutions (oneDNN) can be twice as fast as the one that runs matmuls (a matmul alone made
fractions above 1). The kernels' calls alternate with the model's so that load from other
processes hits all alike; the JSON gives each kernel's rate and which one set the peak. FLOPs per
frame are counted on the graph that is timed. The timed model is the paper's network in eval
mode with BatchNorm folded into the convs (same outputs), channels-last memory layout, and
only the test-time outputs computed; nothing that changes accuracy.

``--compile`` additionally runs the graph through ``torch.compile`` with Inductor's freezing
(constant weights pre-packed for oneDNN, residual add and ReLU fused into the convolutions):
the same arithmetic, a one-off compile of a minute or two per batch size on a small CPU, and a
C++ compiler needed on CPU.

Timings on a shared machine vary with the other work running: each figure is the best of
``--repeats`` timed calls after warm-up (median printed beside it).

torch and the models are imported by the functions that use them. The ``bench infer`` command line and
the accuracy check through the timed graph are :mod:`handlib.infer_cli` (they need the data and training
code this model tool must not import).
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
import statistics
import time
from typing import TYPE_CHECKING

from handlib.models.summary import count_flops

if TYPE_CHECKING:
    import torch


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def _time_interleaved(functions: dict, device: torch.device, repeats: int, warmup: int,
                      desc: str) -> dict[str, list[float]]:
    """Seconds per call of each ``functions[name]()``, the functions taking turns so that
    load from other processes hits them alike; ``warmup`` untimed rounds first."""
    from tqdm.auto import tqdm

    for _ in range(warmup):
        for function in functions.values():
            function()
    _synchronize(device)
    seconds: dict[str, list[float]] = {name: [] for name in functions}
    for _ in tqdm(range(repeats), desc=desc, leave=False):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            _synchronize(device)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def matmul_operands(device: torch.device, size: int | None = None, dtype=None):
    """Two (size × size) matrices, fp32 unless ``dtype``: 2048 on a CPU (tens of ms), 8192 on a GPU."""
    import torch

    size = size or (8192 if device.type == "cuda" else 2048)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype or torch.float32)
    b = torch.randn(size, size, generator=generator).to(device, dtype or torch.float32)
    return a, b


def measure_matmul_flops(device: torch.device, size: int | None = None,
                         repeats: int = 10, dtype=None) -> float:
    """Best FLOP/s of a square matmul on ``device`` (in inference mode), fp32 unless ``dtype``.
    One of the peak kernels only: a roofline divides by :func:`measure_peak`."""
    import torch

    with torch.inference_mode():
        a, b = matmul_operands(device, size, dtype)
        seconds = _time_interleaved({"mm": lambda: torch.mm(a, b)}, device, repeats, warmup=2,
                                    desc=f"{str(a.dtype).removeprefix('torch.')} matmul")["mm"]
    return 2 * a.shape[0] ** 3 / min(seconds)


# The kernels the peak is the best of: a network here is convolutions and linear layers.
PEAK_KERNELS = ("matmul", "conv3x3", "conv1x1")


def peak_kernels(device: torch.device, dtype=None, small: bool = False, matmul_size: int | None = None) -> dict:
    """{name: (call, FLOPs per call)} for :data:`PEAK_KERNELS` in ``dtype`` (fp32 unless given), in
    inference mode: a square matmul (2048; 8192 on a GPU) and 3×3 / 1×1 convolutions of 256 channels
    on a (32, 256, 32, 32) channels-last batch (64×64 at batch 64 on a GPU). ``small`` shrinks them
    (tests; a small kernel runs below the peak, so fractions against it are overestimates);
    ``matmul_size`` overrides the matmul's side."""
    import torch

    dtype = dtype or torch.float32
    gpu = device.type == "cuda"
    a, b = matmul_operands(device, matmul_size or ((4096 if gpu else 1024) if small else None), dtype)
    batch, side, channels = (64, 64, 256) if gpu else ((8, 32, 128) if small else (32, 32, 256))
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, channels, side, side, generator=generator).to(device, dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    kernels = {"matmul": (lambda: torch.mm(a, b), 2 * a.shape[0] ** 3)}
    for k in (3, 1):
        conv = torch.nn.Conv2d(channels, channels, k, padding=k // 2, bias=False).to(device, dtype)
        conv = conv.to(memory_format=torch.channels_last).requires_grad_(False)
        kernels[f"conv{k}x{k}"] = ((lambda conv=conv: conv(x)), 2 * batch * side * side * channels * channels * k * k)
    return kernels


def peak_from_timings(kernels: dict, seconds: dict[str, list[float]]) -> dict:
    """{"peak_flops_per_s", "peak_kernel", "kernel_flops_per_s": {name: best FLOP/s}} from the
    interleaved timings of :func:`peak_kernels`' calls."""
    rates = {name: flops / min(seconds[name]) for name, (_, flops) in kernels.items()}
    best = max(rates, key=rates.get)
    return {"peak_flops_per_s": rates[best], "peak_kernel": best, "kernel_flops_per_s": rates}


def measure_peak(device: torch.device, dtype=None, repeats: int = 5, small: bool = False) -> dict:
    """:func:`peak_from_timings` of :func:`peak_kernels` timed on their own (best of ``repeats``)."""
    import torch

    with torch.inference_mode():
        kernels = peak_kernels(device, dtype, small)
        seconds = _time_interleaved({n: k[0] for n, k in kernels.items()}, device, repeats, warmup=1,
                                    desc="peak kernels")
    return peak_from_timings(kernels, seconds)


def merge_peaks(*peaks: dict) -> dict:
    """The best rate of each kernel over several :func:`measure_peak` results, and the best of those."""
    rates = {name: max(p["kernel_flops_per_s"][name] for p in peaks) for name in peaks[0]["kernel_flops_per_s"]}
    best = max(rates, key=rates.get)
    return {"peak_flops_per_s": rates[best], "peak_kernel": best, "kernel_flops_per_s": rates}


def prepare_for_inference(model: torch.nn.Module, device: torch.device, fuse: bool = True,
                          channels_last: bool = True) -> torch.nn.Module:
    """Eval mode on ``device``; BatchNorm folded (when the model offers it) and NHWC layout."""
    import torch

    model = model.to(device).eval()
    if fuse and hasattr(model, "fuse_for_inference"):
        model = model.fuse_for_inference()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _fp32_context(device: torch.device):
    """On CUDA: strict fp32 convolutions (cuDNN would otherwise use TF32, a precision shortcut the
    fp32 matmul reference does not take) and cuDNN's autotuner (same arithmetic, faster)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    import torch

    return torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False,
                                      allow_tf32=False)


def compile_context(compile: bool):
    """Inductor freezing must be on when the compiled graph is first run (compilation is lazy)."""
    if not compile:
        return contextlib.nullcontext()
    import torch._inductor.config as inductor_config
    return inductor_config.patch(freezing=True)


PRECISIONS = ("fp32", "bf16")


def inference_dtype(precision: str):
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    return torch.bfloat16 if precision == "bf16" else torch.float32


def cast_inputs(inputs: dict, dtype) -> dict:
    """The floating-point tensors of an input batch in ``dtype`` (indices and integers untouched)."""
    import torch

    return {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}


def benchmark_inference(model_name: str, variant: str | None = None, convention: str = "nyu",
                        batch_sizes: tuple[int, ...] = (1, 64), repeats: int = 5,
                        device: torch.device | None = None, fuse: bool = True,
                        channels_last: bool = True, image_size: int | None = None,
                        matmul_size: int | None = None, compile: bool = False, small_peak: bool = False,
                        profile: str | None = None, precision: str = "fp32") -> dict:
    """Frames/s per batch size, FLOPs per frame, the peak (:data:`PEAK_KERNELS`) and roofline fractions.

    A clip model (CADSTN's temporal and fusion networks) runs whole clips: batch b means the fewest
    clips holding b frames (batch 1: one clip of T frames; 64: 64 / T clips), and frames/s counts
    every frame of them (``frames_b{b}`` says how many a call ran). ``profile`` builds the network at
    that profile's sizes of the model's chapter (its crop and named settings such as a width) instead
    of the paper's. ``precision="bf16"`` converts the weights and inputs to bf16 (no autocast: nothing
    is cast per call) and measures the peak kernels in bf16."""
    import torch

    from handlib.device import cpu_name, describe_device, pick_device
    from handlib.models.registry import get_model_spec

    dtype = inference_dtype(precision)
    device = device or pick_device()
    spec = get_model_spec(model_name)
    variant = variant or spec.default_variant
    spec = spec.for_variant(variant)
    frames_per_sample = spec.clip_length if spec.input_kind == "clip" else 1
    infer = spec.inference_forward
    torch.manual_seed(0)
    if profile is not None:
        from handlib.profiles import get_profile

        prof = get_profile(profile, spec.chapter, variant)
        image_size = image_size or prof.image_size
        model = spec.build_for(variant, convention, replace(prof, image_size=image_size))
    else:
        image_size = image_size or spec.input_size
        model = spec.build(variant=variant, convention=convention, image_size=image_size)
    model = prepare_for_inference(model, device, fuse=fuse, channels_last=channels_last)
    flops_per_frame = count_flops(model, spec.example_input(1, image_size, device), infer) // frames_per_sample
    model = model.to(dtype)
    if compile:      # one graph per batch size: dynamic shapes would cost speed
        model = torch.compile(model, dynamic=False)
    kernels = peak_kernels(device, dtype, small=small_peak or matmul_size is not None, matmul_size=matmul_size)
    kernel_seconds: dict[str, list[float]] = {name: [] for name in kernels}
    result = {"model": model_name, "variant": variant, "dataset": convention,
              "device": describe_device(device), "cpu": cpu_name() if device.type == "cpu" else None,
              "profile": profile, "fused_bn": fuse,
              "channels_last": channels_last, "compiled": compile, "precision": precision, "image_size": image_size,
              "frames_per_sample": frames_per_sample, "flops_per_frame": flops_per_frame}
    with torch.inference_mode(), compile_context(compile), _fp32_context(device):
        for batch in batch_sizes:
            samples = -(-batch // frames_per_sample)          # whole clips holding `batch` frames
            inputs = cast_inputs(spec.example_input(samples, image_size, device), dtype)
            if channels_last and inputs["depth"].dim() == 4:
                inputs["depth"] = inputs["depth"].contiguous(memory_format=torch.channels_last)
            calls = repeats if samples * frames_per_sample > 1 else 10 * repeats   # one frame is fast: more calls
            # the kernels take turns with the model, a few times per batch size
            turns = {"model": lambda: infer(model, inputs), **{n: k[0] for n, k in kernels.items()}}
            seconds = _time_interleaved(turns, device, calls, warmup=2,
                                        desc=f"{model_name} batch {batch} (+ peak kernels)")
            for name in kernels:
                kernel_seconds[name] += seconds[name]
            frames = samples * frames_per_sample
            result[f"frames_b{batch}"] = frames
            result[f"fps_b{batch}"] = frames / min(seconds["model"])
            result[f"fps_b{batch}_median"] = frames / statistics.median(seconds["model"])
    # The peak is the best kernel over every interleaved call, so all ratios share it.
    peak = peak_from_timings(kernels, kernel_seconds)
    result.update(peak)
    for batch in batch_sizes:
        result[f"roofline_fraction_b{batch}"] = (result[f"fps_b{batch}"] * flops_per_frame
                                                 / peak["peak_flops_per_s"])
    return result
