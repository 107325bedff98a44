"""``python -m handlib summary MODEL``: parameters and FLOPs per sample, measured on the model.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass in eval
mode: convolutions, linear layers and matmuls (2 FLOPs per multiply–accumulate); BatchNorm,
ReLU, pooling and resizing are not counted (the usual convention: FLOPs = 2 × MACs).

torch and the models are imported by the functions that use them: building the CLI parser stays light.
"""
from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING

from handlib.models.registry import ModelChoices
from handlib.dataset_registry import dataset_names

if TYPE_CHECKING:
    from torch import nn

CONVENTION_CHOICES = dataset_names("real")   # the real datasets' own joint conventions


def count_parameters(model: nn.Module) -> int:
    """Trainable and frozen parameters (BatchNorm γ/β included, running statistics not)."""
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def recurrent_flops(model: nn.Module, counter=None):
    """Counts what the FLOP counter misses: recurrent layers run as one fused kernel it does not see
    (oneDNN's ``mkldnn_rnn_layer``, cuDNN's RNN). Yields a one-item list that the LSTM layers' forward
    passes add to: 2 x steps x 4H x (input + H) per layer and direction, times 3 when the pass records
    a graph for a backward pass through trainable weights (backward ≈ twice the forward). With the
    ``counter`` given, an LSTM whose matmuls the counter did see is not added again."""
    import torch
    from torch import nn

    total = [0]
    seen_before: dict[int, int] = {}

    def before(module, args):
        seen_before[id(module)] = counter.get_total_flops() if counter is not None else 0

    def lstm_flops(module, args, output):
        data = args[0]
        steps = data.shape[0] * data.shape[1] if data.dim() == 3 else data.shape[0]
        directions = 2 if module.bidirectional else 1
        trained = torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters())
        forward = sum(2 * steps * 4 * module.hidden_size * (width + module.hidden_size) * directions
                      for width in [module.input_size] + [module.hidden_size * directions] * (module.num_layers - 1))
        if counter is not None and counter.get_total_flops() - seen_before[id(module)] >= forward // 2:
            return           # the counter saw this LSTM's matmuls itself (an unfused kernel)
        total[0] += (3 if trained else 1) * forward

    hooks = [m.register_forward_pre_hook(before) for m in model.modules() if isinstance(m, nn.LSTM)]
    hooks += [m.register_forward_hook(lstm_flops) for m in model.modules() if isinstance(m, nn.LSTM)]
    try:
        yield total
    finally:
        for hook in hooks:
            hook.remove()


def count_flops(model: nn.Module, inputs, forward=None) -> int:
    """FLOPs per sample (a clip model's sample is a clip) of one forward pass, without autograd:
    ``forward(model, batch)`` on a batch dict (a spec's ``forward`` / ``inference_forward``), or
    ``model(inputs)`` on a tensor; recurrent layers included (:func:`recurrent_flops`)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    batch = inputs if isinstance(inputs, dict) else {"depth": inputs}
    forward = forward or (lambda net, b: net(b["depth"]))
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter, recurrent_flops(model, counter) as recurrent:
            forward(model, batch)
    finally:
        model.train(was_training)
    return (counter.get_total_flops() + recurrent[0]) // batch["depth"].shape[0]


def count_inference_parameters(model: nn.Module, inputs, forward) -> int:
    """Parameters of the modules one inference pass runs (e.g. without training-only auxiliary heads)."""
    import torch

    ran: list = []
    hooks = [m.register_forward_hook(lambda module, a, o: ran.append(module)) for m in model.modules()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            forward(model, inputs)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    seen = {id(p): p.numel() for module in ran for p in module.parameters(recurse=False)}
    return sum(seen.values())


def summarize(model_name: str, variant: str | None = None, convention: str = "nyu",
              image_size: int | None = None) -> dict:
    """Parameters and FLOPs of the training graph, and of the inference graph (what a test run
    computes, e.g. CrossInfoNet without its heat-map heads, CADSTN's spatial net without its auxiliary
    paths). A clip model's FLOPs are per clip; ``flops_per_frame`` divides by its length."""
    from handlib.models.registry import get_model_spec

    spec = get_model_spec(model_name)
    variant = variant or spec.default_variant
    spec = spec.for_variant(variant)
    image_size = image_size or spec.input_size
    model = spec.build(variant=variant, convention=convention, image_size=image_size)
    inputs = spec.example_input(1, image_size)
    flops = count_flops(model, inputs, spec.forward)
    inference = count_flops(model, inputs, spec.inference_forward)
    frames = spec.clip_length if spec.input_kind == "clip" else 1
    return {
        "model": model_name,
        "variant": variant,
        "dataset": convention,
        "image_size": image_size,
        "input_kind": spec.input_kind,
        "frames_per_sample": frames,
        "params": count_parameters(model),
        "params_inference": count_inference_parameters(model, inputs, spec.inference_forward),
        "params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "flops": flops,
        "macs": flops // 2,
        "flops_inference": inference,
        "flops_per_frame": inference // frames,
    }


def _run(args) -> int:
    from handlib.errors import UsageError
    from handlib.models.registry import get_model_spec

    spec = get_model_spec(args.model)
    if args.variant is not None and args.variant not in spec.variants:
        raise UsageError(f"--variant {args.variant!r} is not a variant of {args.model}; "
                         f"expected one of {list(spec.variants)}")
    if args.image_size is not None and args.image_size % 16 != 0:
        raise UsageError(f"--image-size must be a multiple of 16, got {args.image_size}")
    result = summarize(args.model, args.variant, args.dataset, args.image_size)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} ({result['variant']}, {result['dataset']} joints, "
              f"{result['image_size']}x{result['image_size']} input)")
        sample = "clip" if result["input_kind"] == "clip" else "sample"
        print(f"  parameters          {result['params'] / 1e6:8.3f} M ({result['params_inference'] / 1e6:.3f} M in "
              f"the inference graph, {result['params_trainable'] / 1e6:.3f} M trainable)")
        print(f"  FLOPs / {sample:<6}      {result['flops'] / 1e9:8.3f} G (training graph)")
        print(f"  FLOPs / {sample:<6}      {result['flops_inference'] / 1e9:8.3f} G (inference graph)")
        if result["frames_per_sample"] > 1:
            print(f"  FLOPs / frame       {result['flops_per_frame'] / 1e9:8.3f} G (inference graph, "
                  f"{result['frames_per_sample']} frames a clip)")
    return 0


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "summary", help="parameters and FLOPs per sample of a model (measured)",
        description="Build a registered model and measure its parameters and FLOPs per sample.")
    parser.add_argument("model", choices=ModelChoices(), help="registered model name")
    parser.add_argument("--dataset", choices=CONVENTION_CHOICES, default="nyu",
                        help="joint convention that sets the head sizes (default nyu)")
    parser.add_argument("--variant", default=None, help="model variant (default: the paper's)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input crop size (default: the paper's, e.g. 96 CrossInfoNet, 128 CADSTN)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)
