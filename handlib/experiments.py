"""A chapter's experiment grid: variants x seeds at one profile and dataset, run or loaded.

:func:`run_grid` is the one call a chapter makes for its training table. For every (variant, seed) it
loads the committed record and its per-frame test predictions when the record's configuration hash
(:func:`handlib.runs.run_config`) matches what the current code and profile would train; otherwise
it trains that run (resuming an interrupted one) through :func:`handlib.runs.train_and_record`.
``retrain=True`` trains every run again. On a CPU the missing runs train side by side, one process per
core with one thread each (``lanes``): measured faster than one run on all cores (issue 13), and a
one-thread run sums in the same order wherever it runs. The returned :class:`Grid` holds records, per-frame
errors and predictions: every table, curve and per-joint plot of a chapter comes from it, with no
checkpoint needed.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from handlib import results
from handlib.runs import config_hash, expected_hash, resolve_run, run_config  # noqa: F401 (expected_hash: re-exported)


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


def default_runs_root(profile: str) -> Path:
    """Where a grid keeps checkpoints: ``runs/`` under the current folder, and for the ``smoke`` profile
    a fixed folder beside the smoke records in the temporary directory (so a smoke record found there
    comes with its weights)."""
    if profile in ("smoke", "smoke-bench"):
        return Path(tempfile.gettempdir()) / "handlib-runs" / profile
    return Path(".")


def run_grid(model: str, *, profile: str, dataset: str = "synthetic", variants=None, seeds=None,
             data_root: str = "", retrain: bool = False, results_dir: str | Path | None = None,
             runs_root: str | Path | None = None, progress: bool = True, lanes: int | None = None,
             **train_kwargs) -> Grid:
    """Load or train every (variant, seed) of ``model`` at ``profile`` on ``dataset``.

    ``variants`` default to all the model's, ``seeds`` to the profile's. Runs are trained where no
    record with the current configuration hash and its predictions exist; an interrupted run resumes.
    ``retrain=True`` trains every run from scratch (its old checkpoints are removed). ``runs_root`` is
    where checkpoints go (default: :func:`default_runs_root`). ``lanes``: how many runs train at once,
    each in its own process with cpu_count / lanes threads (default :func:`default_lanes`; 1 trains
    in this process). ``train_kwargs`` go to :func:`handlib.runs.train_and_record`."""
    return run_grids([(model, variants)], profile=profile, dataset=dataset, seeds=seeds, data_root=data_root,
                     retrain=retrain, results_dir=results_dir, runs_root=runs_root, progress=progress,
                     lanes=lanes, **train_kwargs)[model]


def run_grids(models, *, profile: str, dataset: str = "synthetic", seeds=None, data_root: str = "",
              retrain: bool = False, results_dir: str | Path | None = None, runs_root: str | Path | None = None,
              progress: bool = True, lanes: int | None = None, train: bool = True,
              **train_kwargs) -> dict[str, Grid]:
    """:func:`run_grid` for several models at once: ``models`` is a list of (model, variants or None);
    returns {model: Grid}. The missing runs of all of them share the lanes, and a run that builds on
    another model's run of the same seed (Neverova et al.'s regressor on its segmenter) starts once that
    one has finished. ``train=False`` only loads: a missing run is left out of its grid's records."""
    import shutil

    from handlib.runs import run_dir

    convention = train_kwargs.pop("convention", None)
    grids, missing, specs = {}, [], {}
    for model, variants in models:
        spec, _, prof, _, _ = resolve_run(model, None, dataset, profile, convention, None)
        variants = tuple(variants or spec.variants)
        model_seeds = tuple(prof.seeds if seeds is None else seeds)
        root = Path(runs_root) if runs_root is not None else default_runs_root(profile)
        grid = grids[model] = Grid(model, profile, dataset, variants, model_seeds,
                                   {v: spec.label(v) for v in variants}, runs_root=root)
        specs[model] = spec
        for variant in variants:
            wanted = expected_hash(model, variant, dataset, profile, train_kwargs.get("epochs"),
                                   train_kwargs.get("augment"), convention)
            for seed in model_seeds:
                found = None if retrain else _committed(model, variant, dataset, profile, seed, wanted, results_dir)
                if found is None:
                    out = run_dir(root, spec.for_variant(variant), variant, dataset, profile, seed, wanted)
                    if retrain and out.exists():
                        shutil.rmtree(out)
                    missing.append(dict(model=model, variant=variant, dataset=dataset, profile=profile, seed=seed,
                                        out=str(out), resume=(out / "last.pt").is_file(), data_root=data_root,
                                        results_dir=results_dir, runs_root=root, convention=convention,
                                        **train_kwargs))
                else:
                    grid.records[variant, seed], grid.predictions[variant, seed] = found
        # A later stage reads its earlier stages' weights: a run starts once the runs it builds on (same
        # seed) have finished; the others train side by side meanwhile.
        depths = stage_depths(spec, variants)     # refuses a variant that builds on itself
        overridden = [k for k in ("epochs", "augment") if train_kwargs.get(k) is not None] + (["convention"] if convention else [])
        if overridden and max(depths.values(), default=0) > 0:
            # a later stage looks its earlier stages up by their default configuration
            raise ValueError(f"run_grid: {', '.join(overridden)} cannot be overridden for {model!r}, whose variants "
                             "build on each other; change the profile instead")
    jobs = {(job["model"], job["variant"], job["seed"]): job for job in missing} if train else {}
    after = {key: [(up_model, up, key[2]) for up_model, up in _upstream_runs(specs, key[0], key[1])
                   if (up_model, up, key[2]) in jobs] for key in jobs}
    trained = []
    for key, record in _train_all(jobs, after, lanes, progress):
        model, variant, seed = key
        grids[model].records[variant, seed] = record
        grids[model].predictions[variant, seed] = results.load_predictions(record, results_dir)
        trained.append(key)
    trained.sort(key=list(jobs).index)      # in the grids' order, not the order they finished
    for model, variant, seed in trained:
        grids[model].trained.append((variant, seed))
    return grids


def _upstream_runs(specs: dict, model: str, variant: str) -> list[tuple[str, str]]:
    """(model, variant) of the runs that ``model``'s ``variant`` builds on directly, among the models of
    ``specs`` (an upstream without a variant is its model's default one)."""
    found = []
    for up in specs[model].for_variant(variant).upstreams:
        if up.model in specs:
            found.append((up.model, up.variant or specs[up.model].default_variant))
    return found


def _grid_upstreams(spec, variant: str, variants) -> list[str]:
    """The variants of this grid that ``variant`` builds on directly (an upstream without a variant is
    the model's default one)."""
    ups = [up.variant or spec.default_variant for up in spec.for_variant(variant).upstreams if up.model == spec.name]
    return [v for v in ups if v in variants]


def stage_depths(spec, variants) -> dict[str, int]:
    """Variant -> how many of the grid's own variants it builds on, transitively (0: none). A stage
    built on a variant outside ``variants`` (or on another model) counts that one as already trained."""
    def depth(variant: str, seen: tuple[str, ...] = ()) -> int:
        if variant in seen:
            raise ValueError(f"model {spec.name!r}: variant {variant!r} depends on itself through its upstream stages")
        return max((1 + depth(v, seen + (variant,)) for v in _grid_upstreams(spec, variant, variants)), default=0)
    return {variant: depth(variant) for variant in variants}


def default_lanes(device: str | None = None) -> int:
    """How many runs :func:`run_grid` trains at once: one per core on a CPU, one on an accelerator."""
    import torch

    if (device or "").startswith("cuda") or (device is None and torch.cuda.is_available()):
        return 1
    return max(1, os.cpu_count() or 1)


def _train_all(jobs: dict, after: dict, lanes: int | None, progress: bool):
    """Train ``jobs`` ({key: keyword arguments of train_and_record}), each after the keys in ``after[key]``;
    yields (key, record) as runs finish. Among the ready runs, those that more runs wait on go first, so
    that the stages built on them can start early."""
    from tqdm.auto import tqdm

    from handlib.runs import train_and_record

    if not jobs:
        return
    first = next(iter(jobs.values()))
    lanes = min(len(jobs), lanes or default_lanes(first.get("device")))
    # A ready run's priority: how many runs wait on it, directly or not (then the grid's order).
    waiting = {key: 0 for key in jobs}
    for key in jobs:
        stack = list(after[key])
        while stack:
            up = stack.pop()
            waiting[up] += 1
            stack.extend(after[up])
    order = sorted(jobs, key=lambda k: -waiting[k])
    done: set = set()
    if lanes == 1:
        while len(done) < len(jobs):
            key = next(k for k in order if k not in done and all(u in done for u in after[k]))
            yield key, train_and_record(**jobs[key], progress=progress)[0]
            done.add(key)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // lanes)
    running: dict = {}
    with ProcessPoolExecutor(lanes, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_lane_init, initargs=(threads,)) as pool, \
            tqdm(total=len(jobs), desc=f"training {len(jobs)} runs, {lanes} at a time", unit="run",
                 disable=not progress, leave=False) as bar:
        while len(done) < len(jobs):
            for key in order:
                if len(running) >= lanes:
                    break
                if key not in done and key not in running.values() and all(u in done for u in after[key]):
                    running[pool.submit(_train_in_lane, jobs[key])] = key
            if not running:       # cannot happen while `after` names only keys of `jobs`
                raise RuntimeError(f"no run can start: {sorted(set(jobs) - done)} wait on runs that are not in the grid")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                key = running.pop(future)
                job = jobs[key]
                try:
                    record = future.result()
                except Exception as err:
                    raise RuntimeError(f"training {job['model']} {job['variant']} seed {job['seed']} failed "
                                       f"(checkpoints in {job['out']}): {err}") from err
                done.add(key)
                bar.update()
                yield key, record


def _lane_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _train_in_lane(job: dict) -> dict:
    from handlib.runs import train_and_record

    return train_and_record(**job, progress=False)[0]


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
    return run_dir(grid.runs_root, get_model_spec(grid.model).for_variant(variant), variant, grid.dataset, grid.profile, seed,
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
    net = spec.build_for(variant, convention, prof)
    load_weights(net, path, {"model": grid.model, "variant": variant})
    return net.eval()
