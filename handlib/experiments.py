"""A chapter's experiment grid: variants x seeds at one profile and dataset, run or loaded.

:func:`run_grid` is the one call a chapter makes for its training table. For every (variant, seed) it
loads the committed record and its per-frame test predictions when the record's configuration hash
(:func:`handlib.runs.run_config`) matches what the current code and profile would train; otherwise
it trains that run (resuming an interrupted one) through :func:`handlib.runs.train_and_record`.
``retrain=True`` trains every run again. The returned :class:`Grid` holds records, per-frame
errors and predictions: every table, curve and per-joint plot of a chapter comes from it, with no
checkpoint needed.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from handlib import results
from handlib.runs import config_hash, resolve_run, run_config


@dataclass
class Grid:
    """Records and per-frame test predictions of a grid, keyed by (variant, seed)."""

    model: str
    profile: str
    dataset: str
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    labels: dict[str, str]                         # variant id -> the paper's name for it
    records: dict[tuple[str, int], dict] = field(default_factory=dict)
    predictions: dict[tuple[str, int], tuple] = field(default_factory=dict)   # (pred, truth) (F, J, 3) mm
    trained: list[tuple[str, int]] = field(default_factory=list)              # what this call trained
    runs_root: Path = Path(".")                                               # where checkpoints are

    def errors(self, variant: str, seed: int):
        """(F, J) joint errors in mm of one run on the test split."""
        from handlib.metrics import joint_errors

        return joint_errors(*self.predictions[variant, seed]).float()

    def all_records(self) -> list[dict]:
        return [self.records[v, s] for v in self.variants for s in self.seeds]

    def summary(self) -> str:
        """One line: how many runs were loaded and how many trained."""
        total = len(self.variants) * len(self.seeds)
        return (f"{self.model}, {self.profile} profile, {self.dataset}: {total} runs "
                f"({len(self.variants)} variants x {len(self.seeds)} seeds), {total - len(self.trained)} "
                f"loaded from the committed records, {len(self.trained)} trained now")


def expected_hash(model: str, variant: str, dataset: str, profile: str, epochs: int | None = None,
                  augment: bool | None = None, convention: str | None = None) -> str:
    """The configuration hash a record of this run must carry to be reused."""
    from handlib.runs import augmentation

    spec, variant, prof, recipe, convention = resolve_run(model, variant, dataset, profile, convention, epochs)
    augmented = augmentation(spec, dataset, augment) is not None
    return config_hash(run_config(spec, variant, dataset, convention, prof, recipe, augmented))


def default_runs_root(profile: str) -> Path:
    """Where a grid keeps checkpoints: ``runs/`` under the current folder, and for the ``smoke`` profile
    a fixed folder beside the smoke records in the temporary directory (so a smoke record found there
    comes with its weights)."""
    if profile == "smoke":
        return Path(tempfile.gettempdir()) / "handlib-runs" / "smoke"
    return Path(".")


def run_grid(model: str, *, profile: str, dataset: str = "synthetic", variants=None, seeds=None,
             data_root: str = "", retrain: bool = False, results_dir: str | Path | None = None,
             runs_root: str | Path | None = None, progress: bool = True, **train_kwargs) -> Grid:
    """Load or train every (variant, seed) of ``model`` at ``profile`` on ``dataset``.

    ``variants`` default to all the model's, ``seeds`` to the profile's. Runs are trained where no
    record with the current configuration hash and its predictions exist; an interrupted run resumes.
    ``retrain=True`` trains every run from scratch (its old checkpoints are removed). ``runs_root`` is
    where checkpoints go (default: :func:`default_runs_root`). ``train_kwargs`` go to
    :func:`handlib.runs.train_and_record`."""
    import shutil

    from handlib.runs import run_dir, train_and_record

    convention = train_kwargs.pop("convention", None)
    spec, _, prof, _, _ = resolve_run(model, None, dataset, profile, convention, None)
    variants = tuple(variants or spec.variants)
    seeds = tuple(prof.seeds if seeds is None else seeds)
    runs_root = Path(runs_root) if runs_root is not None else default_runs_root(profile)
    grid = Grid(model, profile, dataset, variants, seeds, {v: spec.label(v) for v in variants},
                runs_root=runs_root)
    for variant in variants:
        wanted = expected_hash(model, variant, dataset, profile, train_kwargs.get("epochs"),
                               train_kwargs.get("augment"), convention)
        for seed in seeds:
            found = None if retrain else _committed(model, variant, dataset, profile, seed, wanted, results_dir)
            if found is None:
                out = run_dir(runs_root, spec, variant, dataset, profile, seed, wanted)
                if retrain and out.exists():
                    shutil.rmtree(out)
                record, _, _ = train_and_record(
                    model, variant=variant, dataset=dataset, profile=profile, seed=seed, out=out,
                    resume=(out / "last.pt").is_file(), data_root=data_root, results_dir=results_dir,
                    progress=progress, runs_root=runs_root, convention=convention, **train_kwargs)
                found = record, results.load_predictions(record, results_dir)
                grid.trained.append((variant, seed))
            grid.records[variant, seed], grid.predictions[variant, seed] = found
    return grid


def _committed(model, variant, dataset, profile, seed, wanted_hash, results_dir):
    """(record, predictions) of a matching committed run, or None."""
    for record in results.load_records(results_dir, profile=profile, model=model, variant=variant,
                                       dataset=dataset, seed=seed):
        if record.get("config_hash") != wanted_hash:
            continue
        try:
            return record, results.load_predictions(record, results_dir)
        except FileNotFoundError:
            continue
    return None


def checkpoint_dir(grid: Grid, variant: str, seed: int) -> Path:
    """Where :func:`run_grid` keeps (or would keep) the checkpoints of one run."""
    from handlib.models.registry import get_model_spec
    from handlib.runs import run_dir

    record = grid.records[variant, seed]
    return run_dir(grid.runs_root, get_model_spec(grid.model), variant, grid.dataset, grid.profile, seed,
                   record["config_hash"])


def load_trained(grid: Grid, variant: str, seed: int):
    """The selected (best-validation) network of one run, in eval mode, or None when its checkpoint is
    not on this machine (checkpoints are not committed: a clone has records and predictions only)."""
    from handlib.train import load_weights

    path = checkpoint_dir(grid, variant, seed) / "best.pt"
    if not path.is_file():
        return None
    spec, _, prof, _, convention = resolve_run(grid.model, variant, grid.dataset, grid.profile,
                                               grid.records[variant, seed]["convention"], None)
    net = spec.build(variant=variant, convention=convention, image_size=prof.image_size)
    load_weights(net, path, {"model": grid.model, "variant": variant})
    return net.eval()
