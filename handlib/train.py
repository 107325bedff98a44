"""The training loop every chapter uses: one function, :func:`fit`, readable in one sitting.

What it does, in order, each epoch: set the epoch's learning rate from the recipe, run the training
steps (autocast, backward, optional gradient clipping, optimiser step), evaluate the selection
metric on the validation split (the spec's; by default the mean 3D joint error in mm), keep the
best-on-validation weights, write checkpoints. Optionally it also validates at log-spaced points
inside epochs: the run's learning curve.
The test split is never looked at here: model selection uses validation only (CrossInfoNet's
released script, network/NYU/train_and_test.py, selected on the test set; the book does not).

A paper's optimiser and schedule are data (:class:`Recipe`), not code. The same loop runs in one
process or under ``torchrun`` with DistributedDataParallel; ``Recipe.batch_size`` is always the
global batch. Interrupted runs resume exactly: the checkpoint holds model, optimiser, AMP scaler,
epoch/step, the partial epoch's sums and every RNG state, and the data order is a pure function of
(seed, epoch), so on CPU a resumed run ends bit-identical to an uninterrupted one.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm.auto import tqdm

from handlib import checkpoint, distributed
from handlib.recipe import Recipe
from handlib.device import describe_device, pick_device, seed_everything
from handlib.geometry import denormalize_joints
from handlib.metrics import joint_errors
from handlib.models.registry import Selection, default_forward

AMP_MODES = ("auto", "off", "bf16", "fp16")


def parameter_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """Optimiser groups. By default two: weights with ``recipe.weight_decay``, norm parameters and
    biases without (unless ``decay_norm_and_bias``). A model with a ``multipliers()`` method (Caffe's
    per-blob ``lr_mult`` / ``decay_mult``: ``{parameter name: (lr_mult, decay_mult)}``) gets one group
    per pair instead, with ``lr_mult`` kept in the group for :func:`set_lr`. Frozen parameters are
    left out."""
    if callable(getattr(model, "multipliers", None)):
        return _multiplier_groups(model, recipe)
    norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            exempt = isinstance(module, norm_types) or name == "bias"
            (no_decay if exempt and not recipe.decay_norm_and_bias else decay).append(param)
    return [{"params": decay, "weight_decay": recipe.weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _multiplier_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    table = model.multipliers()
    groups: dict[tuple[float, float], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name not in table:
            raise ValueError(f"{type(model).__name__}.multipliers() has no entry for trainable parameter {name!r}")
        groups.setdefault(table[name], []).append(param)
    return [{"params": params, "lr_mult": lr_mult, "weight_decay": recipe.weight_decay * decay_mult}
            for (lr_mult, decay_mult), params in groups.items()]


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = parameter_groups(model, recipe)
    fused = {"fused": True} if recipe.fused_optimizer else {}
    if recipe.optimizer == "adam":
        return torch.optim.Adam(groups, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps, **fused)
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov, **fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the base rate: each group runs at ``lr`` x its ``lr_mult`` (1 unless the model sets one)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The rate :func:`set_lr` last set (before any group's ``lr_mult``)."""
    group = optimizer.param_groups[0]
    return group["lr"] / group.get("lr_mult", 1.0)


# --- how to run (not what the paper says) -----------------------------------------------------------

@dataclass
class TrainOptions:
    """Run settings: device, precision, checkpoints. None of these change what is learnt on CPU."""

    seed: int = 0
    device: str | None = None          # None: handlib.device.pick_device() (cuda:LOCAL_RANK under DDP)
    amp: str = "auto"                  # auto: autocast on CUDA, the recipe's precision elsewhere; off | bf16 | fp16
    channels_last: bool = False
    compile: bool = False              # torch.compile the network
    num_workers: int = 0
    eval_batch_size: int | None = None  # None: the per-process training batch
    checkpoint_dir: str | Path | None = None  # last.pt, best.pt, history.json go here (rank 0)
    checkpoint_every: int = 0          # also checkpoint every N steps (0: at epoch ends only)
    # Learning curve: also validate at this many log-spaced points of the run (samples seen), besides
    # every epoch end; recorded in TrainResult.curve. Validation draws no random numbers, so the run
    # learns exactly what it would without them.
    curve_points: int = 0
    resume: bool = False               # continue from checkpoint_dir/last.pt
    stop_after_step: int | None = None  # stop (as if interrupted) after this global step
    progress: bool = True
    # Online augmentation: batch dict -> batch dict, applied to each training batch on the device
    # (never to validation/test). Draw randomness from torch's global RNG (or a generator saved
    # elsewhere) so that resumed runs stay exact; name it in ``meta`` so resume checks it.
    batch_transform: Callable[[dict], dict] | None = None
    meta: dict = field(default_factory=dict)  # model, variant, dataset, ...: checked on resume


@dataclass
class TrainResult:
    history: list[dict]                # one dict per finished epoch
    best: dict                         # {"epoch", <selection metric>: value} of the best validation epoch
    final_val: dict                    # validation metrics of the last finished epoch
    best_state: dict | None            # model state_dict (CPU) of the best validation epoch
    global_step: int
    wall_s: float
    device: str
    interrupted: bool = False          # stopped by stop_after_step before the last epoch ended
    curve: list[dict] = field(default_factory=list)   # {"step", "samples_seen", "val"} in order
    precision: str = "float32"         # what the steps computed in: float32, or the autocast dtype


def resolve_amp(amp: str, device: torch.device, precision: str = "fp32") -> torch.dtype | None:
    """The autocast dtype (None = full precision) for ``amp`` on ``device``; ``"auto"`` follows the
    recipe's ``precision`` off CUDA (bf16 or none) and autocasts on CUDA."""
    if amp not in AMP_MODES:
        raise ValueError(f"amp={amp!r}: expected one of {', '.join(AMP_MODES)}")
    if amp == "auto":
        if device.type != "cuda":
            return torch.bfloat16 if precision == "bf16" else None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


class _ResumableSampler(DistributedSampler):
    """DistributedSampler whose order depends only on (seed, epoch), minus the first ``skip``
    indices of this process (the batches an interrupted epoch had already done)."""

    def __init__(self, dataset, num_replicas, rank, seed, skip=0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.skip = skip

    def __iter__(self):
        return iter(list(super().__iter__())[self.skip:])

    def __len__(self):
        return super().__len__() - self.skip


def _to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
    if channels_last and out.get("depth") is not None and out["depth"].dim() == 4:
        out["depth"] = out["depth"].contiguous(memory_format=torch.channels_last)
    return out


# --- evaluation ---------------------------------------------------------------------------------------

@torch.no_grad()
def predict_xyz(model: nn.Module, predict_fn: Callable, dataset: Dataset, *, batch_size: int = 64,
                device: torch.device | str | None = None, forward: Callable = default_forward,
                amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(F, J, 3) predicted and ground-truth joints in camera mm, on the CPU (clips: F = clips x T).

    ``predict_fn(outputs)`` gives normalised joints; they are mapped back to mm with each sample's
    ``com`` and ``cube`` (geometry.denormalize_joints) and compared with ``joints_xyz``."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    preds, gts = [], []
    # A private generator: evaluating must not draw from the global RNG that training uses.
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        generator=torch.Generator())
    try:
        for batch in loader:
            batch = _to_device(batch, device, channels_last)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                joints_norm = predict_fn(forward(model, batch))
            xyz = denormalize_joints(joints_norm.float(), batch["com"].float(), batch["cube"].float())
            # Clips (B, T, J, 3) become B*T frames: metrics average over frames, never over time.
            pred = xyz.reshape(-1, *xyz.shape[-2:]).cpu()
            truth = batch["joints_xyz"].reshape(-1, *xyz.shape[-2:]).cpu()
            if "valid" in batch:            # a padded clip's padding is not scored
                keep = batch["valid"].reshape(-1).cpu()
                pred, truth = pred[keep], truth[keep]
            preds.append(pred)
            gts.append(truth)
    finally:
        model.train(was_training)
    return torch.cat(preds), torch.cat(gts)


def evaluate(model: nn.Module, predict_fn: Callable, dataset: Dataset, **kwargs) -> dict:
    """Mean 3D joint error (mm) over ``dataset`` and how many frames it scored (a clip counts its
    frames, less any padding). Under DDP each process takes every world_size-th item and the sums are
    added, so the result is the whole split's mean."""
    ctx = distributed.current()
    shard = Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size)) if ctx.distributed else dataset
    # (sum of joint errors, number of joint errors, frames scored)
    totals = torch.zeros(3, dtype=torch.float64)
    if len(shard):
        pred, gt = predict_xyz(model, predict_fn, shard, **kwargs)
        errors = joint_errors(pred, gt)
        totals += torch.tensor([errors.sum().item(), errors.numel(), pred.shape[0]], dtype=torch.float64)
    if ctx.distributed:  # gloo reduces CPU tensors, NCCL needs them on the GPU
        device = torch.device("cuda", ctx.local_rank) if torch.distributed.get_backend() == "nccl" else "cpu"
        totals = distributed.all_reduce_sum(totals.to(device)).cpu()
    return {"mean_error_mm": float(totals[0] / totals[1]), "frames": int(totals[2])}


# --- the loop -----------------------------------------------------------------------------------------

def fit(model: nn.Module, loss_fn: Callable, predict_fn: Callable, train_set: Dataset, val_set: Dataset,
        recipe: Recipe, options: TrainOptions | None = None, forward: Callable = default_forward,
        selection: Selection | None = None, infer: Callable | None = None) -> TrainResult:
    """Train ``model`` with ``recipe``; select on ``val_set``; return history and best weights.

    ``loss_fn(outputs, batch)`` returns a dict of scalar terms including ``"total"`` (a mean over the
    batch, so DDP's gradient averaging gives the global-batch gradient); ``predict_fn(outputs)``
    gives (B, J, 3) (or clips' (B, T, J, 3)) normalised joints; ``forward(net, batch)`` calls the
    network for training, ``infer(net, batch)`` for validation (default: ``forward``; e.g. without
    auxiliary heads); ``selection`` names the validation metric that picks the best epoch (default:
    the mean 3D joint error in mm, lower is better)."""
    run = _Run(model, loss_fn, predict_fn, train_set, val_set, recipe, options or TrainOptions(),
               forward, infer or forward, selection or Selection())
    epochs_bar = tqdm(range(run.state["epoch"], recipe.epochs), desc="epochs", unit="epoch",
                      initial=run.state["epoch"], total=recipe.epochs, disable=not run.show_progress)
    for epoch in epochs_bar:
        if not run.train_epoch(epoch):          # stopped (as if interrupted) inside the epoch
            epochs_bar.close()
            return run.result(interrupted=True)
        run.end_epoch(epoch)
        best = run.state["best"]
        epochs_bar.set_postfix({f"val_{run.selection.name}": f"{run.state['history'][-1]['val'][run.selection.name]:.4g}",
                                "best": f"{best[run.selection.name]:.4g}"})
        if run.stop_requested():
            epochs_bar.close()
            return run.result(interrupted=epoch + 1 < recipe.epochs)
    return run.result(interrupted=False)


class _Run:
    """The state of one training run and its steps: set up (or resume), train an epoch, validate."""

    def __init__(self, model, loss_fn, predict_fn, train_set, val_set, recipe, options, forward, infer,
                 selection):
        self.model, self.loss_fn, self.predict_fn = model, loss_fn, predict_fn
        self.forward, self.infer = forward, infer
        self.train_set, self.val_set, self.recipe, self.options = train_set, val_set, recipe, options
        self.selection = selection
        self.ctx = distributed.current()
        self.device = _pick_device(options, self.ctx)
        self._check_sizes()
        self.batch_per_process = recipe.batch_size // self.ctx.world_size
        self.steps_per_epoch = len(train_set) // recipe.batch_size  # whole global batches only
        self.amp_dtype = resolve_amp(options.amp, self.device, recipe.precision)
        self.show_progress = options.progress and self.ctx.is_main

        seed_everything(options.seed + self.ctx.rank)  # dropout / augmentation streams differ per process
        model.to(self.device)
        if options.channels_last:
            model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(model, recipe)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.net = nn.parallel.DistributedDataParallel(model) if self.ctx.distributed else model
        if options.compile:
            self.net = torch.compile(self.net)

        self.ckpt_dir = Path(options.checkpoint_dir) if options.checkpoint_dir else None
        # Everything that changes what is learnt must match on resume; epochs may grow (train longer).
        recipe_meta = {k: v for k, v in recipe.to_dict().items() if k != "epochs"}
        self.meta = {**options.meta, "recipe": recipe_meta, "seed": options.seed,
                     "world_size": self.ctx.world_size}
        if selection.name != "mean_error_mm":
            self.meta["selection"] = selection.name
        self.state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": [],
                      "best": {"epoch": None, selection.name: selection.worst()}, "sums": {},
                      "data_wait_s": 0.0, "train_s": 0.0, "curve": []}
        self.curve_steps = curve_steps(options.curve_points, self.steps_per_epoch, recipe.epochs)
        self.best_state = None
        if options.resume:
            if self.ckpt_dir is None:
                raise ValueError("TrainOptions.resume needs TrainOptions.checkpoint_dir")
            self.state, self.best_state = _resume(self.ckpt_dir, self.meta, model, self.optimizer,
                                                  self.scaler, self.ctx)
        self.start = time.perf_counter()

    def _check_sizes(self) -> None:
        recipe, world = self.recipe, self.ctx.world_size
        if recipe.batch_size % world:
            raise ValueError(f"Recipe.batch_size={recipe.batch_size} (the global batch) must be divisible by "
                             f"the number of processes ({world})")
        if len(self.train_set) < recipe.batch_size:
            raise ValueError(f"training set has {len(self.train_set)} samples, fewer than one batch "
                             f"(Recipe.batch_size={recipe.batch_size})")
        if len(self.val_set) == 0:
            raise ValueError("validation set is empty: model selection needs held-out frames (val_frames)")

    def _loader(self, epoch: int, first_step: int) -> DataLoader:
        sampler = _ResumableSampler(self.train_set, self.ctx.world_size, self.ctx.rank, seed=self.options.seed,
                                    skip=first_step * self.batch_per_process)
        sampler.set_epoch(epoch)
        # A private generator keeps the loader from drawing on the global RNG (exact resume) and makes
        # worker seeds a function of (seed, epoch).
        return DataLoader(self.train_set, batch_size=self.batch_per_process, sampler=sampler,
                          num_workers=self.options.num_workers, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator().manual_seed(self.options.seed * 100_003 + epoch))

    def train_epoch(self, epoch: int) -> bool:
        """Run the epoch's remaining steps; False when ``stop_after_step`` stopped it part-way."""
        state, options = self.state, self.options
        lr = self.recipe.lr_at(epoch)
        set_lr(self.optimizer, lr)
        first_step = state["step_in_epoch"]
        batches = iter(self._loader(epoch, first_step))
        self.model.train()
        bar = tqdm(range(first_step, self.steps_per_epoch), desc=f"epoch {epoch + 1}/{self.recipe.epochs}",
                   unit="step", leave=False, initial=first_step, total=self.steps_per_epoch,
                   disable=not self.show_progress)
        sums = {k: torch.tensor(v, dtype=torch.float64, device=self.device) for k, v in state["sums"].items()}
        shown_at = 0.0
        for step in bar:
            tick = time.perf_counter()
            batch = _to_device(next(batches), self.device, options.channels_last)
            if options.batch_transform is not None:  # may rebuild depth: restore the layout
                batch = _to_device(options.batch_transform(batch), self.device, options.channels_last)
            got_batch = time.perf_counter()
            if self.recipe.per_step:       # cosine, inverse or warm-up: a new rate every step
                set_lr(self.optimizer, self.recipe.lr_at_step(state["global_step"], self.steps_per_epoch))
            terms = _train_step(self.net, self.model, batch, self.loss_fn, self.forward, self.optimizer,
                                self.scaler, self.amp_dtype, self.recipe)
            for k, v in terms.items():
                sums[k] = sums.get(k, torch.zeros((), dtype=torch.float64, device=self.device)) + v.double()
            state["data_wait_s"] += got_batch - tick
            state["train_s"] += time.perf_counter() - tick
            state["step_in_epoch"], state["global_step"] = step + 1, state["global_step"] + 1
            state["sums"] = sums
            if state["global_step"] in self.curve_steps:
                self.curve_point()
            # Reading the sums syncs with the GPU: refresh the shown losses about once a second.
            if self.show_progress and (time.perf_counter() - shown_at > 1.0 or step + 1 == self.steps_per_epoch):
                shown_at = time.perf_counter()
                current_lr = base_lr(self.optimizer)      # per-step schedules move it every step
                bar.set_postfix({k: f"{float(v) / (step + 1):.4g}" for k, v in sums.items()} | {"lr": f"{current_lr:.3g}"})
            last_step = step + 1 == self.steps_per_epoch
            if self.ckpt_dir and not last_step and (self.stop_requested() or (
                    options.checkpoint_every and state["global_step"] % options.checkpoint_every == 0)):
                _save_last(self.ckpt_dir, self.meta, self.model, self.optimizer, self.scaler, state, self.ctx)
            if self.stop_requested() and not last_step:
                bar.close()
                return False
        bar.close()
        if self.device.type == "cuda":  # queued GPU work belongs to this epoch's training time
            tick = time.perf_counter()
            torch.cuda.synchronize(self.device)
            state["train_s"] += time.perf_counter() - tick
        return True

    def validate(self) -> dict:
        """The selection metric (and whatever else the metric's function reports) on the validation split."""
        kwargs = dict(batch_size=self.options.eval_batch_size or self.batch_per_process, device=self.device,
                      forward=self.infer, channels_last=self.options.channels_last,
                      amp_dtype=self.amp_dtype, num_workers=self.options.num_workers)
        if self.selection.evaluate is None:
            return evaluate(self.model, self.predict_fn, self.val_set, **kwargs)
        return self.selection.evaluate(self.model, self.predict_fn, self.val_set, **kwargs)

    def end_epoch(self, epoch: int) -> None:
        """Validate, append to the history, keep the best weights, write checkpoints."""
        state, name = self.state, self.selection.name
        val = self.validate()
        if name not in val:
            raise ValueError(f"validation metrics {sorted(val)} lack the selection metric {name!r}")
        samples = self.steps_per_epoch * self.recipe.batch_size
        train_terms = {k: float(distributed.all_reduce_sum(v)) / (self.steps_per_epoch * self.ctx.world_size)
                       for k, v in state["sums"].items()}
        state["history"].append({
            "epoch": epoch + 1, "lr": base_lr(self.optimizer), "train": train_terms, "val": val,
            "samples_seen": (epoch + 1) * samples, "train_s": state["train_s"],
            "samples_per_s": samples / max(state["train_s"], 1e-9),
            "data_wait_fraction": state["data_wait_s"] / max(state["train_s"], 1e-9),
        })
        state["curve"].append({"step": state["global_step"], "samples_seen": (epoch + 1) * samples, "val": val})
        if self.selection.improves(val[name], state["best"][name]):
            state["best"] = {"epoch": epoch + 1, name: val[name]}
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            if self.ckpt_dir and self.ctx.is_main:
                checkpoint.save({"format_version": checkpoint.FORMAT_VERSION, "kind": "best", "meta": self.meta,
                                 "model": self.best_state, "epoch": epoch + 1, "val": val},
                                self.ckpt_dir / "best.pt")
        state.update(epoch=epoch + 1, step_in_epoch=0, sums={}, data_wait_s=0.0, train_s=0.0)
        if self.ckpt_dir:
            _save_last(self.ckpt_dir, self.meta, self.model, self.optimizer, self.scaler, state, self.ctx)
            if self.ctx.is_main:
                checkpoint.atomic_write(self.ckpt_dir / "history.json",
                                        lambda f: f.write(json.dumps(state["history"], indent=1).encode()))

    def curve_point(self) -> None:
        """Validate in the middle of an epoch (a learning-curve point); training resumes unchanged."""
        val = self.validate()
        self.model.train()
        self.state["curve"].append({"step": self.state["global_step"],
                                    "samples_seen": self.state["global_step"] * self.recipe.batch_size, "val": val})

    def stop_requested(self) -> bool:
        stop = self.options.stop_after_step
        return stop is not None and self.state["global_step"] >= stop

    def result(self, interrupted: bool) -> TrainResult:
        return _result(self.state, self.best_state, self.start, self.device, interrupted=interrupted,
                       precision=str(self.amp_dtype or torch.float32).removeprefix("torch."))


def _train_step(net, model, batch, loss_fn, forward, optimizer, scaler, amp_dtype, recipe) -> dict:
    """One optimiser step; returns the detached loss terms."""
    with torch.autocast(batch["depth"].device.type, dtype=amp_dtype or torch.float32,
                        enabled=amp_dtype is not None):
        terms = loss_fn(forward(net, batch), batch)
    if "total" not in terms:
        raise ValueError(f"loss function returned terms {sorted(terms)}; it must include 'total'")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(terms["total"].float()).backward()
    if recipe.grad_clip is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return {k: v.detach().float() for k, v in terms.items()}


def _pick_device(options: TrainOptions, ctx: distributed.DistContext) -> torch.device:
    if options.device is None and ctx.distributed and torch.cuda.is_available():
        return torch.device("cuda", ctx.local_rank)
    return pick_device(options.device)


def _save_last(ckpt_dir, meta, model, optimizer, scaler, state, ctx) -> None:
    """Write last.pt (rank 0) with every process's RNG state, then wait for it on every rank."""
    rng = distributed.gather_objects(checkpoint.capture_rng_state())
    if ctx.is_main:
        checkpoint.save({
            "format_version": checkpoint.FORMAT_VERSION, "kind": "training", "meta": meta,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "epoch": state["epoch"], "step_in_epoch": state["step_in_epoch"],
            "global_step": state["global_step"], "history": state["history"], "best": state["best"],
            "sums": {k: float(v) for k, v in state["sums"].items()},
            "data_wait_s": state["data_wait_s"], "train_s": state["train_s"], "rng": rng,
            "curve": state["curve"],
        }, ckpt_dir / "last.pt")
    distributed.barrier()


def _resume(ckpt_dir, meta, model, optimizer, scaler, ctx):
    """Restore everything _save_last wrote; returns (loop state, best weights or None)."""
    path = Path(ckpt_dir) / "last.pt"
    saved = checkpoint.load(path)
    if saved.get("kind") != "training":
        raise checkpoint.CheckpointError(f"checkpoint {path} is a {saved.get('kind')!r} checkpoint, "
                                         "not a training checkpoint")
    checkpoint.check_compatible(saved["meta"], meta, path)
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError as err:
        raise checkpoint.CheckpointError(f"checkpoint {path} does not fit this model: {err}") from err
    optimizer.load_state_dict(saved["optimizer"])
    scaler.load_state_dict(saved["scaler"])
    checkpoint.restore_rng_state(saved["rng"][ctx.rank])
    best_state = None
    if saved["best"]["epoch"] is not None and (Path(ckpt_dir) / "best.pt").is_file():
        best_state = checkpoint.load(Path(ckpt_dir) / "best.pt")["model"]
    keys = ("epoch", "step_in_epoch", "global_step", "history", "best", "sums", "data_wait_s", "train_s")
    state = {k: saved[k] for k in keys}
    state["curve"] = saved.get("curve", [])       # checkpoints from before learning curves have none
    return state, best_state


def _result(state, best_state, start, device, interrupted, precision="float32") -> TrainResult:
    history = state["history"]
    return TrainResult(history=history, best=dict(state["best"]),
                       final_val=history[-1]["val"] if history else {}, best_state=best_state,
                       global_step=state["global_step"], wall_s=time.perf_counter() - start,
                       device=describe_device(device), interrupted=interrupted, curve=list(state["curve"]),
                       precision=precision)


def curve_steps(points: int, steps_per_epoch: int, epochs: int) -> set[int]:
    """Up to ``points`` global steps spread evenly on a log axis from the first step to the last
    (rounding can merge early ones; epoch ends are left out: they are validated anyway), for a
    learning curve against samples seen."""
    total = steps_per_epoch * epochs
    if points <= 0 or total <= 1:
        return set()
    ratio = total ** (1 / max(points - 1, 1))
    steps = {max(1, round(ratio ** k)) for k in range(points)}
    return {s for s in steps if s % steps_per_epoch and s < total}


def load_weights(model: nn.Module, path: str | Path, expected_meta: dict | None = None) -> dict:
    """Load the weights of a best.pt / last.pt into ``model``; returns the checkpoint's meta.

    ``expected_meta`` (e.g. {"model": ..., "variant": ...}) is compared field by field first."""
    saved = checkpoint.load(path)
    if expected_meta:
        checkpoint.check_compatible(saved["meta"], expected_meta, path)
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError as err:
        raise checkpoint.CheckpointError(f"checkpoint {path} does not fit this model: {err}") from err
    return saved["meta"]
