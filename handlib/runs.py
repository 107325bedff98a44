"""One training run of a registered model, start to finish: resolve, train, test, record.

:func:`train_and_record` is what a chapter, the grid (:mod:`handlib.experiments`) and
``python -m handlib train`` run: look the model up in the registry, build the profile's datasets
(frames, clips or part labels, as the spec asks), load a frozen upstream stage when the spec names
one, let the spec's ``train_split`` hook (if any) turn the training split into what the run trains on,
:func:`handlib.train.fit`, evaluate the selected weights on the test split, and write the results
record with its per-frame test predictions. Under ``torchrun`` every process runs it; rank 0 alone
writes.

A run is identified by its *configuration* (:func:`run_config`): everything that changes what is
learnt (model, variant, stage, data, profile sizes and settings, recipe, augmentation, the training-split
hook). Its hash is
stored in the record, so a grid can tell a committed record of the same configuration from a stale one.

Importing this module imports no torch (the CLI builds its parser from it): the functions do.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

from handlib.dataset_registry import DATASETS
from handlib.errors import UsageError
from handlib.profiles import get_profile


# Every run validates at this many log-spaced points besides its epoch ends: its learning curve
# (validation error against samples seen), which is how a chapter chooses and shows its budget.
CURVE_POINTS = 12


def build_datasets(*args, **kwargs):
    """:func:`handlib.datasets.build_datasets`, imported on first use (a seam tests replace)."""
    from handlib.datasets import build_datasets as build

    return build(*args, **kwargs)


def default_out_dir(model: str, variant: str, dataset: str, profile: str, seed: int,
                    stage: str | None = None) -> Path:
    """``runs/MODEL/VARIANT[__after-STAGE]/DATASET/PROFILE/seedS``: a two-stage model's runs are kept
    apart from the same variant trained on another first stage."""
    variant_dir = f"{variant}__after-{stage}" if stage else variant
    return Path("runs") / model / variant_dir / dataset / profile / f"seed{seed}"


def run_dir(runs_root: str | Path, spec, variant: str, dataset: str, profile: str, seed: int,
            config_hash: str) -> Path:
    """The checkpoint folder of a grid's run: :func:`default_out_dir` plus its configuration hash, so
    runs of another configuration never resume from each other."""
    return Path(runs_root) / default_out_dir(spec.name, variant, dataset, profile, seed, stage_key(spec)) / config_hash


def resolve_run(model: str, variant: str | None, dataset: str, profile: str, convention: str | None,
                epochs: int | None):
    """(spec, variant, profile object, recipe, convention) for a run, or UsageError naming the bad value."""
    from handlib.models.registry import get_model_spec
    from handlib.recipe import recipe_for_profile

    try:
        spec = get_model_spec(model)
    except ValueError as err:
        raise UsageError(str(err)) from err
    variant = variant or spec.default_variant
    if variant not in spec.variants:
        raise UsageError(f"model {model!r} has no variant {variant!r}; variants: {', '.join(spec.variants)}")
    spec = spec.for_variant(variant)
    prof = get_profile(profile, spec.chapter, variant)
    recipe = recipe_for_profile(spec.recipe, prof)
    if epochs is not None:
        if epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {epochs}")
        recipe = replace(recipe, epochs=epochs)
    # Real data fixes the joint convention; synthetic hands can be rendered in any of them.
    convention = convention or (spec.convention if _rendered(dataset) else dataset)
    return spec, variant, prof, recipe, convention


def run_config(spec, variant: str, dataset: str, convention: str, prof, recipe, augmented: bool) -> dict:
    """Everything that changes what a run learns (not where it runs, nor how many seeds there are)."""
    sizes = {k: v for k, v in asdict(prof).items() if k not in ("seeds", "name")}
    config = {"model": spec.name, "variant": variant, "stage": stage_key(spec), "dataset": dataset,
              # rendered frames change with the renderer (its cache version); real data does not
              "data_version": data_version(dataset),
              "convention": convention, "profile": prof.name, "data": spec.data,
              "clip_length": spec.clip_length, "sizes": sizes, "recipe": recipe.to_dict(),
              "augmentation": augmented, "selection": spec.selection.name}
    # Added later: present only when they differ from the default, so older records keep their hash.
    if spec.clip_stride != 1:
        config["clip_stride"] = spec.clip_stride
    if spec.test_clips != "windows":
        config["test_clips"] = spec.test_clips
    if spec.train_split is not None:    # the run trains on what this hook makes of the training split
        config["train_split"] = spec.train_split_name
    if spec.upstreams:     # a retrained earlier stage makes its later stages' records stale
        hashes = [expected_hash(up.model, up.variant, dataset, prof.name) for up in spec.upstreams]
        config["upstream_hash"] = hashes[0] if len(hashes) == 1 else hashes
    return config


def _rendered(dataset: str) -> bool:
    return dataset in DATASETS and DATASETS[dataset].synthetic


def data_version(dataset: str):
    """What a run's frames depend on besides the configuration: the renderer's cache version for the
    synthetic hands, with the sensor model's for the real-like ones (None for recorded data)."""
    from handlib.synth.cache import RENDER_VERSION, SENSOR_VERSION

    if not _rendered(dataset):
        return None
    if DATASETS[dataset].domain == "real-like":
        return {"render": RENDER_VERSION, "sensor": SENSOR_VERSION}
    return RENDER_VERSION


def config_hash(config: dict) -> str:
    """A short, stable hash of :func:`run_config`'s dict."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stage_key(spec) -> str | None:
    """How a run's earlier stages appear in its key and folder (``+``-joined), None for one stage."""
    return "+".join(up.key() for up in spec.upstreams) or None


def augmentation(spec, dataset: str, augment: bool | None):
    """The training batch transform for this run (None: no augmentation). ``augment``: None applies
    the model's own where it registers one for this dataset, False never, True requires one."""
    if augment is False:
        return None
    transform = spec.augmentation(dataset) if spec.augmentation is not None else None
    if augment and transform is None:
        raise UsageError(f"model {spec.name!r} registers no online augmentation for dataset {dataset!r}")
    return transform


def load_splits(spec, dataset: str, prof, convention: str, data_root: str):
    """The profile's train / val / test splits in the form the spec trains on, or UsageError."""
    kwargs = {}
    if spec.data in ("clips", "clip_frames"):
        kwargs.update(clip_length=spec.clip_length, clip_stride=spec.clip_stride, test_clips=spec.test_clips)
    elif spec.data == "parts":
        kwargs["part_labels"] = True
    try:
        splits = build_datasets(dataset, prof, convention, prof.image_size, 0, data_root, **kwargs)
    except (ImportError, ValueError) as err:
        raise UsageError(str(err)) from err
    if spec.data == "clip_frames":
        from handlib.datasets import FramesOfClips

        splits = {name: FramesOfClips(split) for name, split in splits.items()}
    return splits


def short_run(model: str, variant: str | None, dataset: str, profile: str, convention: str | None,
              data_root: str, *, steps: int, epochs: int, batch_size: int | None = None,
              fused_optimizer: bool | None = None):
    """(spec, variant, profile object, recipe, convention, splits) of a run cut to ``steps`` training
    batches, one validation batch and one test item: what speed measurements and profiles train on.
    ``batch_size`` / ``fused_optimizer`` override the recipe's when given."""
    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    spec, variant, prof, recipe, convention = resolve_run(model, variant, dataset, profile, convention, epochs)
    recipe = replace(recipe, batch_size=batch_size or recipe.batch_size)
    if fused_optimizer is not None:
        recipe = replace(recipe, fused_optimizer=fused_optimizer)
    # Counts are of clips when the model trains on clips or on their frames.
    per_item = spec.clip_length if spec.data == "clip_frames" else 1
    sized = replace(prof, train_frames=-(-steps * recipe.batch_size // per_item),
                    val_frames=-(-recipe.batch_size // per_item), test_frames=1)
    return spec, variant, prof, recipe, convention, load_splits(spec, dataset, sized, convention, data_root)


def load_upstream(spec, dataset: str, profile: str, seed: int, convention: str, image_size: int,
                  runs_root: str | Path = ".") -> list:
    """The frozen earlier stages of a multi-stage model, one network per ``spec.upstreams`` entry (an
    empty list for one-stage models): each the upstream run of the same dataset, profile and seed,
    with its selected (best-validation) weights, in eval mode."""
    return [_load_stage(spec.name, up, dataset, profile, seed, convention, image_size, runs_root)
            for up in spec.upstreams]


def expected_hash(model: str, variant: str, dataset: str, profile: str, epochs: int | None = None,
                  augment: bool | None = None, convention: str | None = None) -> str:
    """The configuration hash a record of this run must carry to be reused (one run's business, so it
    lives here; :mod:`handlib.experiments` re-exports it for grids)."""
    spec, variant, prof, recipe, convention = resolve_run(model, variant, dataset, profile, convention, epochs)
    augmented = augmentation(spec, dataset, augment) is not None
    return config_hash(run_config(spec, variant, dataset, convention, prof, recipe, augmented))


def _load_stage(consumer, stage, dataset, profile, seed, convention, image_size, runs_root):
    from handlib.models.registry import get_model_spec
    from handlib.train import load_weights

    up = get_model_spec(stage.model)
    variant = stage.variant or up.default_variant
    up = up.for_variant(variant)
    plain = Path(runs_root) / default_out_dir(up.name, variant, dataset, profile, seed, stage_key(up))  # `train`'s
    grid = run_dir(runs_root, up, variant, dataset, profile, seed, expected_hash(up.name, variant, dataset, profile))
    path = next((folder / "best.pt" for folder in (grid, plain) if (folder / "best.pt").is_file()),
                plain / "best.pt")
    if not path.is_file():
        raise UsageError(f"{consumer} trains on the output of {up.name} ({variant}), but {path} does not "
                         f"exist: train it first with `python -m handlib train {up.name} --variant {variant} "
                         f"--dataset {dataset} --profile {profile} --seed {seed}`")
    prof = replace(get_profile(profile, up.chapter, variant), image_size=image_size)
    net = up.build_for(variant, convention, prof)
    load_weights(net, path, {"model": up.name, "variant": variant, "dataset": dataset})
    net.requires_grad_(False)
    return net.eval()


def staged_forward(forward, upstream, attach):
    """``forward`` fed with what the frozen ``upstream`` net adds to each batch (no gradient to it)."""
    import torch

    def run(net, batch):
        first = upstream.to(batch["depth"].device)
        with torch.no_grad():
            batch = attach(first, batch)
        return forward(net, batch)
    return run


def train_and_record(model: str, *, variant: str | None = None, dataset: str = "synthetic",
                     profile: str = "book", seed: int = 0, epochs: int | None = None,
                     convention: str | None = None, out: str | Path | None = None, resume: bool = False,
                     data_root: str = "", device: str | None = None, amp: str = "auto",
                     compile: bool = False, channels_last: bool = True, num_workers: int = 0,
                     selection: str = "best_val", results_dir: str | Path | None = None,
                     write_results: bool = True, progress: bool = True, augment: bool | None = None,
                     runs_root: str | Path = ".", checkpoint_every: int | None = None):
    """Train one registered model end to end; returns (record, TrainResult, model).

    ``augment``: None applies the model's own online augmentation where it registers one for this
    dataset (e.g. CrossInfoNet's on real data), False never augments, True requires it. A record
    written here comes with its per-frame test predictions (:func:`handlib.results.write_predictions`).
    ``checkpoint_every`` (steps; default: a quarter epoch, at least 25 steps) also checkpoints inside an
    epoch, so an interrupted one-epoch run resumes where it stopped (exactly: the loop's resume is exact)."""
    from handlib import distributed
    from handlib.device import seed_everything
    from handlib.train import TrainOptions, fit

    spec, variant, prof, recipe, convention = resolve_run(model, variant, dataset, profile, convention, epochs)
    batch_transform = augmentation(spec, dataset, augment)
    config = run_config(spec, variant, dataset, convention, prof, recipe, batch_transform is not None)
    out = Path(out) if out else Path(runs_root) / default_out_dir(model, variant, dataset, profile, seed,
                                                                  stage_key(spec))
    if resume and not (out / "last.pt").is_file():
        raise UsageError(f"--resume: no checkpoint {out / 'last.pt'} to resume from")
    if not resume and (out / "last.pt").is_file():
        raise UsageError(f"{out / 'last.pt'} exists: pass --resume to continue that run, "
                         "or choose another --out")
    ctx = distributed.init_from_env(device.split(":")[0] if device else None)

    seed_everything(seed)  # identical initial weights for a given seed (and on every DDP process)
    net = spec.build_for(variant, convention, prof)
    # The data are the same for every training seed: the spread over seeds is the training's own.
    # Rank 0 renders / caches first; the other processes then read its cache instead of re-rendering.
    if not ctx.is_main:
        distributed.barrier()
    splits = load_splits(spec, dataset, prof, convention, data_root)
    if ctx.is_main:
        distributed.barrier()
    # Settings that start the network from the training data (a profile knob), before any resume.
    model_init = spec.data_init(net, splits["train"], prof.extra) if spec.data_init else None
    forward, infer = spec.forward, spec.inference_forward
    stage_nets = load_upstream(spec, dataset, profile, seed, convention, prof.image_size, runs_root)
    for stage, stage_net in zip(spec.upstreams, stage_nets):
        if stage.embed is not None:         # copied into the network's own frozen layers, once
            stage.embed(net, stage_net)
        else:                               # run beside it, feeding each batch
            forward = staged_forward(forward, stage_net, stage.attach)
            infer = staged_forward(infer, stage_net, stage.attach)
    if spec.train_split is not None:        # e.g. the training split mixed with frames an upstream labelled
        if not ctx.is_main:                 # rank 0 first: the others then read what it cached
            distributed.barrier()
        splits["train"] = spec.train_split(splits["train"], stage_nets, prof)
        if ctx.is_main:
            distributed.barrier()
    meta = {"model": model, "variant": variant, "dataset": dataset, "convention": convention,
            "profile": profile, "image_size": prof.image_size, "stage": config["stage"],
            # Part of what is learnt: a resume must use the same augmentation (None = none).
            "augmentation": f"{model}.training_augmentation({dataset})" if batch_transform else None,
            "model_init": model_init, "train_split": config.get("train_split")}
    if checkpoint_every is None:
        checkpoint_every = max(25, len(splits["train"]) // recipe.batch_size // 4)
    options = TrainOptions(seed=seed, device=device, amp=amp, channels_last=channels_last, compile=compile,
                           num_workers=num_workers, checkpoint_dir=out, resume=resume,
                           checkpoint_every=checkpoint_every,
                           progress=progress, batch_transform=batch_transform, meta=meta,
                           curve_points=CURVE_POINTS)
    result = fit(net, spec.loss, spec.predict, splits["train"], splits["val"], recipe, options, forward,
                 spec.selection, infer)
    if selection == "best_val" and result.best_state is not None:
        net.load_state_dict(result.best_state)
    record = _test_and_record(spec, net, splits["test"], infer, result, recipe, config, meta, selection,
                              seed, out, ctx, channels_last, write_results, results_dir, splits["val"],
                              Path(runs_root))
    return record, result, net


def _portable(out: Path, runs_root: Path) -> str:
    """The run folder as the record keeps it: relative to the runs root (no machine's own path)."""
    out, runs_root = Path(out).resolve(), Path(runs_root).resolve()
    return str(out.relative_to(runs_root)) if out.is_relative_to(runs_root) else out.name


def _test_and_record(spec, net, test_set, infer, result, recipe, config, meta, selection, seed, out, ctx,
                     channels_last, write_results, results_dir, val_set=None, runs_root: Path = Path(".")) -> dict:
    """Evaluate the selected weights on the test split; write the record and its predictions (rank 0)."""
    from handlib.metrics import joint_errors, mean_error
    from handlib.results import make_record, write_predictions, write_record
    from handlib.train import evaluate, predict_xyz

    batch = recipe.batch_size // ctx.world_size
    predictions = val_predictions = None
    if ctx.distributed:     # every process scores its share; rank 0 alone keeps per-frame predictions
        test = evaluate(net, spec.predict, test_set, forward=infer, channels_last=channels_last, batch_size=batch)
        if ctx.is_main and write_results:
            predictions = predict_xyz(net, spec.predict, test_set, forward=infer, batch_size=batch,
                                      channels_last=channels_last)
    else:
        predictions = predict_xyz(net, spec.predict, test_set, forward=infer, batch_size=batch,
                                  channels_last=channels_last)
        test = {"mean_error_mm": mean_error(joint_errors(*predictions)), "frames": predictions[0].shape[0]}
        if val_set is not None and write_results:
            val_predictions = predict_xyz(net, spec.predict, val_set, forward=infer, batch_size=batch,
                                          channels_last=channels_last)
    record = make_record(chapter=spec.chapter, model=spec.name, variant=meta["variant"],
                         dataset=meta["dataset"], convention=meta["convention"], profile=meta["profile"],
                         seed=seed, result=result, test_metrics=test, recipe=recipe, selection=selection,
                         extra={"world_size": ctx.world_size, "out": _portable(out, runs_root),
                                "augmentation": meta["augmentation"], "model_init": meta["model_init"],
                                "precision": result.precision},
                         config=config, config_hash=config_hash(config), stage=config["stage"])
    if ctx.is_main and write_results:
        record["path"] = str(write_record(record, results_dir))
        write_predictions(record, *predictions, results_dir, val=val_predictions)
    return record
