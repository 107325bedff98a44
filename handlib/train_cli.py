"""``python -m handlib train MODEL`` and ``python -m handlib bench train MODEL``.

:func:`train_and_record` is the whole recipe a chapter or the CLI runs: look the model up in the
registry, build the profile's datasets, :func:`handlib.train.fit`, evaluate the selected weights on
the test split, write the results record. Under ``torchrun`` every process runs it; rank 0 alone
prints and writes.

Building the parser imports no torch (``python -m handlib --help`` stays fast): the training modules
are imported by the functions that run.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from handlib.cli import ModelChoices
from handlib.errors import UsageError
from handlib.profiles import DATASET_NAMES, PROFILE_NAMES, get_profile

REAL_DATASETS = ("nyu", "icvl", "msra", "hands17")
AMP_MODES = ("auto", "off", "bf16", "fp16")   # = handlib.train.AMP_MODES (tests/test_cli_help.py)


def build_datasets(*args, **kwargs):
    """:func:`handlib.datasets.build_datasets`, imported on first use (a seam tests replace)."""
    from handlib.datasets import build_datasets as build

    return build(*args, **kwargs)


def default_out_dir(model: str, variant: str, dataset: str, profile: str, seed: int) -> Path:
    return Path("runs") / model / variant / dataset / profile / f"seed{seed}"


def resolve_run(model: str, variant: str | None, dataset: str, profile: str, convention: str | None,
                epochs: int | None):
    """(spec, variant, profile object, recipe, convention) for a run, or UsageError naming the bad value."""
    from handlib.models.registry import get_model_spec
    from handlib.train import Recipe, recipe_for_profile

    try:
        spec = get_model_spec(model)
    except ValueError as err:
        raise UsageError(str(err)) from err
    variant = variant or spec.default_variant
    if variant not in spec.variants:
        raise UsageError(f"model {model!r} has no variant {variant!r}; variants: {', '.join(spec.variants)}")
    if not isinstance(spec.recipe, Recipe):
        raise UsageError(f"model {model!r} registers no training recipe (ModelSpec.recipe must be a "
                         f"handlib.train.Recipe, got {type(spec.recipe).__name__})")
    prof = get_profile(profile, spec.chapter)
    recipe = recipe_for_profile(spec.recipe, prof)
    if epochs is not None:
        if epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {epochs}")
        recipe = replace(recipe, epochs=epochs)
    # Real data fixes the joint convention; synthetic hands can be rendered in any of them.
    convention = convention or (dataset if dataset in REAL_DATASETS else spec.extra.get("convention", "nyu"))
    return spec, variant, prof, recipe, convention


def _datasets(dataset, prof, convention, size, seed, data_root):
    """build_datasets, with a missing loader or data folder reported as a usage error."""
    try:
        return build_datasets(dataset, prof, convention, size, seed, data_root)
    except (ImportError, ValueError) as err:
        raise UsageError(str(err)) from err


def train_and_record(model: str, *, variant: str | None = None, dataset: str = "synthetic",
                     profile: str = "book", seed: int = 0, epochs: int | None = None,
                     convention: str | None = None, out: str | Path | None = None, resume: bool = False,
                     data_root: str = "", device: str | None = None, amp: str = "auto",
                     compile: bool = False, channels_last: bool = False, num_workers: int = 0,
                     selection: str = "best_val", results_dir: str | Path | None = None,
                     write_results: bool = True, progress: bool = True, augment: bool | None = None):
    """Train one registered model end to end; returns (record, TrainResult, model).

    ``augment``: None applies the model's own online augmentation where it registers one for this
    dataset (``ModelSpec.extra["training_augmentation"](dataset)``, e.g. CrossInfoNet's on real
    data), False never augments, True requires it."""
    from handlib import distributed
    from handlib.device import seed_everything
    from handlib.results import make_record, write_record
    from handlib.train import TrainOptions, default_forward, evaluate, fit

    spec, variant, prof, recipe, convention = resolve_run(model, variant, dataset, profile, convention, epochs)
    batch_transform = _augmentation(spec, dataset, augment)
    out = Path(out) if out else default_out_dir(model, variant, dataset, profile, seed)
    if resume and not (out / "last.pt").is_file():
        raise UsageError(f"--resume: no checkpoint {out / 'last.pt'} to resume from")
    if not resume and (out / "last.pt").is_file():
        raise UsageError(f"{out / 'last.pt'} exists: pass --resume to continue that run, "
                         "or choose another --out")
    ctx = distributed.init_from_env(device.split(":")[0] if device else None)

    seed_everything(seed)  # identical initial weights for a given seed (and on every DDP process)
    net = spec.build(variant=variant, convention=convention, image_size=prof.image_size)
    # The data are the same for every training seed: the spread over seeds is the training's own.
    # Rank 0 renders / caches first; the other processes then read its cache instead of re-rendering.
    if not ctx.is_main:
        distributed.barrier()
    splits = _datasets(dataset, prof, convention, prof.image_size, 0, data_root)
    if ctx.is_main:
        distributed.barrier()
    # Settings that start the network from the training data (a profile knob), before any resume.
    init_from_data = spec.extra.get("data_dependent_init")
    model_init = init_from_data(net, splits["train"], prof) if init_from_data else None
    forward = spec.extra.get("forward", default_forward)
    meta = {"model": model, "variant": variant, "dataset": dataset, "convention": convention,
            "profile": profile, "image_size": prof.image_size}
    # Part of what is learnt: a resume must use the same augmentation (None = none).
    meta["augmentation"] = (f"{model}.training_augmentation({dataset})"
                            if batch_transform is not None else None)
    meta["model_init"] = model_init
    options = TrainOptions(seed=seed, device=device, amp=amp, channels_last=channels_last, compile=compile,
                           num_workers=num_workers, checkpoint_dir=out, resume=resume,
                           progress=progress, batch_transform=batch_transform, meta=meta)
    result = fit(net, spec.loss, spec.predict, splits["train"], splits["val"], recipe, options, forward)

    if selection == "best_val" and result.best_state is not None:
        net.load_state_dict(result.best_state)
    test = evaluate(net, spec.predict, splits["test"], forward=forward, channels_last=channels_last,
                    batch_size=recipe.batch_size // ctx.world_size)
    record = make_record(chapter=spec.chapter, model=model, variant=variant, dataset=dataset,
                         convention=convention, profile=profile, seed=seed, result=result,
                         test_metrics=test, recipe=recipe, selection=selection,
                         extra={"world_size": ctx.world_size, "out": str(out),
                                "augmentation": meta.get("augmentation"),
                                "model_init": model_init})
    if ctx.is_main and write_results:
        record["path"] = str(write_record(record, results_dir))
    return record, result, net


def _augmentation(spec, dataset: str, augment: bool | None):
    """The training batch transform for this run (None: no augmentation)."""
    if augment is False:
        return None
    factory = spec.extra.get("training_augmentation")
    transform = factory(dataset) if factory is not None else None
    if augment and transform is None:
        raise UsageError(f"model {spec.name!r} registers no online augmentation for dataset {dataset!r}")
    return transform


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
                        help="autocast: auto = bf16 on CUDA, off on CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--channels-last", action="store_true")
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
            best = record["best_val"]
            print(f"{record['model']}/{record['variant']} on {record['dataset']} ({record['profile']}, "
                  f"seed {record['seed']}): best val {best['mean_error_mm']:.2f} mm at epoch {best['epoch']}, "
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
                    "samples/s and data-wait fraction.")
    _add_run_options(p)
    p.add_argument("--steps", type=int, default=10, help="timed steps (per epoch)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the profile's recipe batch")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_bench_train, profile="smoke")


def bench_train(model: str, *, variant=None, dataset="synthetic", profile="smoke", convention=None,
                data_root="", device=None, amp="auto", compile=False, channels_last=False,
                num_workers=0, steps=10, batch_size=None, progress=False) -> dict:
    """Measured training throughput of a registered model: {"samples_per_s", "data_wait_fraction", ...}."""
    from handlib.device import seed_everything
    from handlib.train import TrainOptions, default_forward, fit

    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    spec, variant, prof, recipe, convention = resolve_run(model, variant, dataset, profile, convention, 2)
    recipe = replace(recipe, batch_size=batch_size or recipe.batch_size)
    sized = replace(prof, train_frames=steps * recipe.batch_size, val_frames=recipe.batch_size, test_frames=1)
    splits = _datasets(dataset, sized, convention, prof.image_size, 0, data_root)
    seed_everything(0)
    net = spec.build(variant=variant, convention=convention, image_size=prof.image_size)
    options = TrainOptions(device=device, amp=amp, compile=compile, channels_last=channels_last,
                           num_workers=num_workers, progress=progress)
    result = fit(net, spec.loss, spec.predict, splits["train"], splits["val"], recipe, options,
                 spec.extra.get("forward", default_forward))
    timed = result.history[-1]
    return {"model": model, "variant": variant, "dataset": dataset, "batch_size": recipe.batch_size,
            "steps": steps, "amp": amp, "device": result.device,
            "samples_per_s": timed["samples_per_s"], "data_wait_fraction": timed["data_wait_fraction"]}


def run_bench_train(args) -> int:
    figures = bench_train(args.model, variant=args.variant, dataset=args.dataset, profile=args.profile,
                          convention=args.convention, data_root=args.data_root, device=args.device,
                          amp=args.amp, compile=args.compile, channels_last=args.channels_last,
                          num_workers=args.workers, steps=args.steps, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{figures['model']}/{figures['variant']}, batch {figures['batch_size']}, {figures['device']}, "
              f"amp {figures['amp']}: {figures['samples_per_s']:.1f} samples/s, "
              f"{100 * figures['data_wait_fraction']:.1f}% of step time waiting for data")
    return 0
