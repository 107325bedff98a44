"""``python -m handlib summary MODEL``: parameters and FLOPs per sample, measured on the model.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass in eval
mode: convolutions, linear layers and matmuls (2 FLOPs per multiply–accumulate); BatchNorm,
ReLU, pooling and resizing are not counted (the usual convention: FLOPs = 2 × MACs).

torch and the models are imported by the functions that use them: building the CLI parser stays light.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from handlib.models.registry import ModelChoices
from handlib.data.registry import dataset_names

if TYPE_CHECKING:
    from torch import nn

CONVENTION_CHOICES = dataset_names("real")   # the real datasets' own joint conventions


def count_parameters(model: nn.Module) -> int:
    """Trainable and frozen parameters (BatchNorm γ/β included, running statistics not)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, inputs, forward=None) -> int:
    """FLOPs per sample of one forward pass, without autograd: ``forward(model, batch)`` on a batch
    dict (a spec's ``forward`` / ``inference_forward``), or ``model(inputs)`` on a tensor."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    batch = inputs if isinstance(inputs, dict) else {"depth": inputs}
    forward = forward or (lambda net, b: net(b["depth"]))
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        forward(model, batch)
    model.train(was_training)
    return counter.get_total_flops() // batch["depth"].shape[0]


def summarize(model_name: str, variant: str | None = None, convention: str = "nyu",
              image_size: int = 96) -> dict:
    """Parameters and FLOPs of the training graph, and FLOPs of the inference graph (the
    outputs a test run fetches, e.g. CrossInfoNet without its heat-map heads)."""
    from handlib.models.registry import get_model_spec

    spec = get_model_spec(model_name)
    variant = variant or spec.default_variant
    model = spec.build(variant=variant, convention=convention, image_size=image_size)
    inputs = spec.example_input(1, image_size)
    flops = count_flops(model, inputs, spec.forward)
    return {
        "model": model_name,
        "variant": variant,
        "dataset": convention,
        "image_size": image_size,
        "params": count_parameters(model),
        "flops": flops,
        "macs": flops // 2,
        "flops_inference": count_flops(model, inputs, spec.inference_forward),
    }


def _run(args) -> int:
    from handlib.errors import UsageError
    from handlib.models.registry import get_model_spec

    spec = get_model_spec(args.model)
    if args.variant is not None and args.variant not in spec.variants:
        raise UsageError(f"--variant {args.variant!r} is not a variant of {args.model}; "
                         f"expected one of {list(spec.variants)}")
    if args.image_size % 16 != 0:
        raise UsageError(f"--image-size must be a multiple of 16, got {args.image_size}")
    result = summarize(args.model, args.variant, args.dataset, args.image_size)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} ({result['variant']}, {result['dataset']} joints, "
              f"{args.image_size}x{args.image_size} input)")
        print(f"  parameters          {result['params'] / 1e6:8.3f} M")
        print(f"  FLOPs / sample      {result['flops'] / 1e9:8.3f} G (training graph)")
        print(f"  FLOPs / sample      {result['flops_inference'] / 1e9:8.3f} G (inference graph)")
    return 0


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "summary", help="parameters and FLOPs per sample of a model (measured)",
        description="Build a registered model and measure its parameters and FLOPs per sample.")
    parser.add_argument("model", choices=ModelChoices(), help="registered model name")
    parser.add_argument("--dataset", choices=CONVENTION_CHOICES, default="nyu",
                        help="joint convention that sets the head sizes (default nyu)")
    parser.add_argument("--variant", default=None, help="model variant (default: the paper's)")
    parser.add_argument("--image-size", type=int, default=96, help="input crop size (default 96)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run)
