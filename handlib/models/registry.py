"""Model registry: build any paper's network by name with its paper's defaults.

A paper module registers a :class:`ModelSpec` at import time; ``MODEL_MODULES`` lists the modules
to import so that ``get_model_spec`` finds every registered model.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

MODEL_MODULES: list[str] = ["handlib.models.crossinfonet"]
_REGISTRY: dict[str, "ModelSpec"] = {}


@dataclass(frozen=True)
class ModelSpec:
    """What the training loop and the CLI need to know about one paper's network.

    ``build(variant=..., convention=..., image_size=...)`` returns the ``nn.Module``;
    ``loss(outputs, batch)`` returns a dict of named scalar terms including ``"total"``;
    ``predict(outputs)`` returns the (B, J, 3) normalised joints used for metrics;
    ``recipe`` is the paper's optimiser / schedule, in the training loop's recipe format.
    """

    name: str
    paper: str
    chapter: str
    variants: tuple[str, ...]
    default_variant: str
    build: Callable[..., Any]
    loss: Callable[..., dict]
    predict: Callable[..., Any]
    recipe: Any = None
    extra: dict = field(default_factory=dict)


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
