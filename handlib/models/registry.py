"""Model registry: build any paper's network by name with its paper's defaults.

A paper module registers a :class:`ModelSpec` at import time; ``MODEL_MODULES`` lists the modules
to import so that ``get_model_spec`` finds every registered model. A spec is typed data with
defaults that fit most papers: a new paper overrides only what differs (its input, forward options,
the data it needs, how a run is selected, an upstream stage).

This module imports nothing above ``handlib.models`` (tests/test_import_graph.py checks it): the
training loop, the datasets and the CLI read specs, specs never read them.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from handlib.recipe import Recipe

MODEL_MODULES: list[str] = ["handlib.models.crossinfonet", "handlib.models.cadstn", "handlib.models.liu",
                             "handlib.models.neverova", "handlib.models.joint_groups"]
_REGISTRY: dict[str, "ModelSpec"] = {}

INPUT_KINDS = ("frame", "clip")          # one (B, C, S, S) crop | (B, T, C, S, S) consecutive crops
# What each training item holds (see handlib.datasets): independent frames, clips of clip_length
# frames, frames with part labels, or the frames of clips one by one ("clip_frames": a paper whose
# frame and clip networks must see, and be tested on, the same frames).
DATA_KINDS = ("frames", "clips", "parts", "clip_frames")


def default_forward(net, batch: dict):
    """Most papers' networks take the normalised crop: ``net(batch["depth"])``."""
    return net(batch["depth"])


@dataclass(frozen=True)
class Selection:
    """How the validation split picks the best epoch.

    ``name`` is the key in the validation metrics dict; ``evaluate(model, spec, dataset, **kw)``
    returns that dict (None: the loop's joint mean error in mm, key ``mean_error_mm``)."""

    name: str = "mean_error_mm"
    lower_is_better: bool = True
    evaluate: Callable[..., dict] | None = None

    def worst(self) -> float:
        return math.inf if self.lower_is_better else -math.inf

    def improves(self, new: float, best: float) -> bool:
        return new < best if self.lower_is_better else new > best


@dataclass(frozen=True)
class Upstream:
    """A frozen earlier-stage network the model builds on, in one of two ways.

    The upstream run is ``model`` / ``variant`` trained on the same dataset, profile and seed; its
    selected weights are loaded and frozen. Either ``attach(upstream_net, batch) -> batch`` adds what the
    second stage needs to each batch (e.g. a refined centre, part probabilities), or
    ``embed(net, upstream_net)`` copies the upstream weights into the second stage's own frozen layers
    once, before training (e.g. a temporal network on a trained per-frame trunk)."""

    model: str
    variant: str | None = None
    attach: Callable[[Any, dict], dict] | None = None
    embed: Callable[[Any, Any], None] | None = None

    def __post_init__(self):
        if (self.attach is None) == (self.embed is None):
            raise ValueError(f"Upstream {self.key()!r}: give exactly one of attach= or embed=")

    def key(self) -> str:
        """How the stage appears in a run key and output folder."""
        return f"{self.model}-{self.variant}" if self.variant else self.model


@dataclass(frozen=True)
class ModelSpec:
    """What the training loop, the CLI, benches and chapters need to know about one paper's network.

    ``build(variant=..., convention=..., image_size=...)`` returns the ``nn.Module``;
    ``loss(outputs, batch)`` returns a dict of named scalar terms including ``"total"``;
    ``predict(outputs)`` returns the (B, J, 3) normalised joints used for metrics;
    ``variants`` maps each variant id to its label in the paper's tables."""

    name: str
    paper: str
    chapter: str
    variants: Mapping[str, str]
    default_variant: str
    build: Callable[..., Any]
    loss: Callable[..., dict]
    predict: Callable[..., Any]
    recipe: Recipe
    convention: str = "nyu"                      # joints of synthetic runs (real data fixes its own)
    input_kind: str = "frame"
    input_channels: int = 1
    input_size: int = 96                         # the paper's crop size (summary and bench default)
    clip_length: int = 1                         # T for input_kind "clip"
    # real data: clips start every clip_stride frames of a sequence (1: every window; T: non-overlapping);
    # test_clips "concatenated": the test split cut into non-overlapping clips over its sequences
    # concatenated, the last padded (handlib.datasets.PaddedClips), as CADSTN's code does
    clip_stride: int = 1
    test_clips: str = "windows"
    data: str = "frames"                         # frames | clips | parts
    forward: Callable[[Any, dict], Any] = default_forward         # training graph
    infer: Callable[[Any, dict], Any] | None = None               # test-time graph (None: forward)
    selection: Selection = field(default_factory=Selection)
    # dataset name -> batch transform (online augmentation) or None
    augmentation: Callable[[str], Callable[[dict], dict] | None] | None = None
    # (net, training split, profile settings) -> name of the setting applied (recorded; checked on resume)
    data_init: Callable[..., str] | None = None
    upstream: Upstream | tuple[Upstream, ...] | None = None
    # (loaded training split, frozen upstream networks in ``upstreams`` order, Profile) -> the dataset the
    # run trains on (e.g. a mix of that split and frames labelled by an upstream stage); called once the
    # upstream stages are loaded; its qualified name enters the run's configuration (see train_split_name)
    train_split: Callable[[Any, list, Any], Any] | None = None
    # variant id -> fields that differ for that variant (e.g. a clip network's input_kind, data,
    # recipe, upstream, forward): ``for_variant`` applies them
    variant_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # set by for_variant: the spec it was derived from (so that any variant's spec derives its siblings)
    variant_of: "ModelSpec | None" = field(default=None, repr=False, compare=False)
    # profile settings (Profile.extra keys) that ``build`` takes as keywords, e.g. a named smaller width
    build_settings: tuple[str, ...] = ()

    def __post_init__(self):
        def bad(name, expected):
            raise ValueError(f"ModelSpec {self.name!r}: {name}={getattr(self, name)!r}, expected {expected}")
        if self.default_variant not in self.variants:
            bad("default_variant", f"one of {list(self.variants)}")
        if self.input_kind not in INPUT_KINDS:
            bad("input_kind", " or ".join(INPUT_KINDS))
        if self.data not in DATA_KINDS:
            bad("data", " or ".join(DATA_KINDS))
        if self.input_kind == "clip" and self.clip_length < 2:
            bad("clip_length", "> 1 for input_kind 'clip'")
        if self.clip_length > 1 and self.data not in ("clips", "clip_frames"):
            bad("clip_length", "1 unless the data are clips or clip_frames")
        if not isinstance(self.recipe, Recipe):
            bad("recipe", "a handlib.recipe.Recipe")
        if self.data in ("clips", "clip_frames") and self.clip_length < 2:
            bad("clip_length", f"> 1 for data {self.data!r}")
        if self.clip_stride < 1:
            bad("clip_stride", "at least 1")
        if self.test_clips not in ("windows", "concatenated"):
            bad("test_clips", "'windows' or 'concatenated'")
        if self.train_split is not None and "<" in self.train_split_name:
            bad("train_split", "a module-level function (its qualified name identifies the run's data)")
        unknown = sorted(set(self.variant_overrides) - set(self.variants))
        if unknown:
            bad("variant_overrides", f"keys among the variants {list(self.variants)}, not {unknown}")

    def for_variant(self, variant: str) -> "ModelSpec":
        """The spec one variant trains with: the registered spec with the variant's ``variant_overrides``
        (called on any variant's spec, it starts again from the registered one)."""
        root = self.variant_of or self
        if variant not in root.variants:
            raise ValueError(f"model {root.name!r} has no variant {variant!r}; variants: {', '.join(root.variants)}")
        overrides = dict(root.variant_overrides.get(variant, {}))
        return replace(root, **overrides, variant_of=root) if overrides else root

    @property
    def upstreams(self) -> tuple[Upstream, ...]:
        """The frozen earlier stages, in order (none for a one-stage network)."""
        if self.upstream is None:
            return ()
        return self.upstream if isinstance(self.upstream, tuple) else (self.upstream,)

    def build_for(self, variant: str, convention, profile) -> Any:
        """The network a run at ``profile`` (a :class:`handlib.profiles.Profile`) trains: ``build`` at the
        profile's image size, with the profile's settings named in ``build_settings``."""
        settings = {k: profile.extra[k] for k in self.build_settings if k in profile.extra}
        return self.build(variant=variant, convention=convention, image_size=profile.image_size, **settings)

    @property
    def train_split_name(self) -> str | None:
        """``module.qualname`` of :attr:`train_split` (how a run's configuration names it), None if unset."""
        if self.train_split is None:
            return None
        return f"{self.train_split.__module__}.{self.train_split.__qualname__}"

    @property
    def inference_forward(self) -> Callable[[Any, dict], Any]:
        return self.infer or self.forward

    def label(self, variant: str) -> str:
        """The paper's name of ``variant`` (its row in the paper's table)."""
        return self.variants[variant]

    def example_input(self, batch: int, image_size: int, device="cpu") -> dict:
        """A fixed batch of depth-like inputs in [-1, 1] of this model's input kind (summary, benches)."""
        import torch

        shape = (batch, self.input_channels, image_size, image_size)
        if self.input_kind == "clip":
            shape = (batch, self.clip_length) + shape[1:]
        generator = torch.Generator().manual_seed(0)
        return {"depth": (torch.rand(shape, generator=generator) * 2 - 1).to(device)}


def register_model(spec: ModelSpec) -> ModelSpec:
    _REGISTRY[spec.name] = spec
    return spec


def _load_all() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)


def model_names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    """The spec registered as ``name``; unknown names raise ValueError listing the valid ones."""
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {sorted(_REGISTRY) or 'none yet'}")
    return _REGISTRY[name]


# The names model_names() returns, listed here so that CLI help texts need not import the models
# (torch). tests/test_cli_help.py checks that the two agree.
MODEL_NAMES = ("cadstn", "crossinfonet", "joint_groups", "liu", "neverova_reg", "neverova_seg")


class ModelChoices:
    """``choices=`` for a registered model name: help lists :data:`MODEL_NAMES` (no torch import);
    a parsed value is checked against the real registry (so models registered at run time count)."""

    def __iter__(self):
        return iter(MODEL_NAMES)

    def __contains__(self, name) -> bool:
        return name in model_names()
