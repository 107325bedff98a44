"""A paper's optimiser, learning-rate schedule and budget as data (:class:`Recipe`).

A leaf module: model modules declare their paper's recipe here without importing the training loop.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("fp32", "bf16")
SCHEDULES = ("constant", "exponential", "step", "cosine", "inverse")
# Fields added after the first results were recorded: to_dict() leaves them out while they hold their
# default, so a recipe that does not use them keeps its configuration hash (and its checkpoints resume).
_LATER_FIELDS = {"warmup_fraction": 0.0, "precision": "fp32", "fused_optimizer": False, "lr_decay": 0.0}


# --- the recipe: a paper's optimiser and schedule as data ------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """Optimiser, learning-rate schedule and budget of one paper (its ``ModelSpec.recipe``).

    The learning rate of epoch e (0-based) is ``lr * gamma**e`` for ``"exponential"`` and
    ``lr * gamma**(number of milestones <= e)`` for ``"step"``; that of step t (0-based, i.e. after t
    optimiser steps) is ``lr / (1 + t * lr_decay)`` for ``"inverse"`` (Torch7 optim.sgd's
    ``learningRateDecay``) and follows a half cosine over all steps for ``"cosine"``. Weight decay is
    coupled L2 (the optimiser's ``weight_decay``, i.e. TF's L2 regulariser), applied to conv/linear
    weights only unless ``decay_norm_and_bias`` is set."""

    optimizer: str = "adam"                  # "adam" | "sgd"
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 64                     # global batch, summed over DDP processes
    schedule: str = "constant"               # "constant" | "exponential" | "step" | "cosine" | "inverse"
    gamma: float = 1.0                       # per-epoch factor (exponential) or per-milestone factor (step)
    milestones: tuple[int, ...] = ()         # step: epochs at which lr is multiplied by gamma
    weight_decay: float = 0.0
    decay_norm_and_bias: bool = False        # False: no weight decay on BatchNorm/LayerNorm and biases
    momentum: float = 0.9                    # sgd only
    nesterov: bool = False                   # sgd only
    betas: tuple[float, float] = (0.9, 0.999)  # adam only
    eps: float = 1e-8                        # adam only
    grad_clip: float | None = None           # max global gradient norm; None = no clipping
    warmup_fraction: float = 0.0             # share of all steps with a linear warm-up from 0 to lr
    lr_decay: float = 0.0                    # inverse only: lr / (1 + t * lr_decay) at optimiser step t
    # How the arithmetic is done. Both change the rounding, hence what a run learns to the last digit:
    # "bf16" trains under bf16 autocast (on a CPU too; CUDA always autocasts), and a fused optimiser
    # updates all parameters in one kernel (on a CPU 9x faster than PyTorch's default per-tensor loop).
    precision: str = "fp32"                  # "fp32" | "bf16"
    fused_optimizer: bool = False

    def __post_init__(self):
        def bad(name, expected):
            raise ValueError(f"Recipe.{name}={getattr(self, name)!r}: expected {expected}")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", " or ".join(OPTIMIZERS))
        if self.precision not in PRECISIONS:
            bad("precision", " or ".join(PRECISIONS))
        if self.schedule not in SCHEDULES:
            bad("schedule", " or ".join(SCHEDULES))
        if not self.lr > 0:
            bad("lr", "a positive number")
        if self.epochs < 1:
            bad("epochs", "at least 1")
        if self.batch_size < 1:
            bad("batch_size", "at least 1")
        if not self.gamma > 0:
            bad("gamma", "a positive number")
        if self.weight_decay < 0:
            bad("weight_decay", "a number >= 0")
        if self.grad_clip is not None and not self.grad_clip > 0:
            bad("grad_clip", "None or a positive number")
        if self.schedule == "step" and not self.milestones:
            bad("milestones", "at least one epoch when schedule='step'")
        if list(self.milestones) != sorted(set(self.milestones)):
            bad("milestones", "strictly increasing epochs")
        if not 0 <= self.warmup_fraction < 1:
            bad("warmup_fraction", "a fraction in [0, 1)")
        if self.lr_decay < 0 or (self.schedule == "inverse" and self.lr_decay == 0):
            bad("lr_decay", "a number >= 0, positive when schedule='inverse'")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch`` (``lr`` for the per-step schedules: see :meth:`lr_at_step`)."""
        if self.schedule == "exponential":
            return self.lr * self.gamma ** epoch
        if self.schedule == "step":
            return self.lr * self.gamma ** sum(m <= epoch for m in self.milestones)
        return self.lr

    def lr_at_step(self, step: int, steps_per_epoch: int) -> float:
        """Learning rate of 0-based global ``step``: the epoch's rate of :meth:`lr_at`, or for
        ``"cosine"`` lr x (1 + cos(pi x progress)) / 2 over all steps, or for ``"inverse"``
        lr / (1 + step x lr_decay); all times the linear warm-up ramp over the first
        ``warmup_fraction`` of the steps."""
        total = self.epochs * steps_per_epoch
        if self.schedule == "inverse":
            lr = self.lr / (1 + step * self.lr_decay)
        elif self.schedule == "cosine":
            warm = self.warmup_fraction * total
            progress = (step - warm) / max(total - warm, 1)
            lr = self.lr * 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
        else:
            lr = self.lr_at(step // steps_per_epoch)
        warmup_steps = self.warmup_fraction * total
        if step < warmup_steps:
            lr *= (step + 1) / warmup_steps
        return lr

    @property
    def per_step(self) -> bool:
        """Whether the rate changes inside an epoch (cosine, inverse or a warm-up), not only between epochs."""
        return self.schedule in ("cosine", "inverse") or self.warmup_fraction > 0

    def to_dict(self) -> dict:
        values = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        return {k: v for k, v in values.items() if _LATER_FIELDS.get(k, object()) != v}

    @classmethod
    def from_dict(cls, values: dict) -> "Recipe":
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})


def recipe_for_profile(recipe: Recipe, profile) -> Recipe:
    """The paper's recipe at a profile's budget.

    ``full`` keeps the paper's epochs and batch. ``smoke``/``book`` take the profile's epochs and
    batch size (a named deviation: the paper's budget does not fit a CPU) and scale step milestones
    by epochs / paper epochs, so the decays happen at the same fraction of training."""
    if profile.name == "full":
        return recipe
    milestones = recipe.milestones
    if recipe.schedule == "step":
        scale = profile.epochs / recipe.epochs
        milestones = tuple(sorted({max(1, round(m * scale)) for m in recipe.milestones}))
    budget = replace(recipe, epochs=profile.epochs, batch_size=profile.batch_size, milestones=milestones)
    return with_overrides(budget, profile.extra.get("recipe", {}), f"profile {profile.name!r} setting 'recipe'")


def with_overrides(recipe: Recipe, overrides: dict, where: str) -> Recipe:
    """``recipe`` with some fields replaced: a profile's named setting such as a short budget's
    schedule (``{"schedule": "cosine", "warmup_fraction": 0.05, "lr": 2e-3}``). Unknown fields are
    an error naming ``where``."""
    allowed = [f for f in Recipe.__dataclass_fields__ if f not in ("epochs", "batch_size")]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: cannot set {', '.join(unknown)}; expected recipe fields other than "
                         f"epochs and batch_size (the profile's own): {', '.join(allowed)}")
    return replace(recipe, **overrides)
