"""The closing chapter's bench: every paper's full model and a plain baseline on the same frames.

Each entry is one paper's complete model (every network of its pipeline) at its own chapter's sizes,
trained at a bench profile (:data:`handlib.profiles.BENCH_PROFILES`): the same rendered training clips,
the same number of frames for every network, the same test frames with the same crop centres and cubes,
the NYU joint set. :func:`run_bench` loads the committed records (``data/results/one_bench/``) or trains
what is missing through :func:`handlib.experiments.run_grids`; :func:`cross_test` scores a trained run on
the other rendered domain (the domain gap); :func:`leaderboard` is the table, also printed by
``python -m handlib leaderboard``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import nan
from pathlib import Path
from statistics import fmean, stdev

from handlib import results
from handlib.errors import UsageError
from handlib.profiles import BENCH_PROFILES

# The success curve's area is taken over 0..AUC_MAX_MM (the range of the field's success plots).
AUC_MAX_MM = 80.0


@dataclass(frozen=True)
class Entry:
    """One row of the bench: a registered model's variant, its whole pipeline trained before it."""

    key: str
    label: str
    model: str
    variant: str
    # its paper's own NYU result in data/paper_tables.csv: (paper, table, method); None where there is none
    published: tuple[str, str, str] | None
    designs: tuple[str, ...] = ()     # the design choices the domain-gap analysis asks about


ENTRIES = (
    # the baseline's number: CADSTN's own baseline regression
    Entry("baseline", "Direct regression (baseline)", "cadstn", "baseline", ("cadstn", "TableIV", "Baseline Regression")),
    Entry("crossinfonet", "CrossInfoNet (Cross + HM)", "crossinfonet", "cross_hm", ("crossinfonet", "Table1", "Cross+HM"),
          ("heat-map guidance",)),
    Entry("liu", "Liu et al. (attention)", "liu", "attention", ("liu_spatial2d", "Table1", "Ours"),
          ("heat-map guidance", "attention")),
    Entry("neverova", "Neverova et al. (d)", "neverova_reg", "per_joint_weak",
          ("neverova", "Table4", "(d) ours: semi/weakly supervised network"), ("part segmentation", "weak supervision")),
    Entry("cadstn", "CADSTN", "cadstn", "cadstn", ("cadstn", "TableII", "CADSTN"), ("3D volumes", "temporal context")),
    # the paper reports RGB results only
    Entry("joint_groups", "Joint groups (G = 3)", "joint_groups", "g3", None, ("joint groups",)),
)


def get_entry(key: str) -> Entry:
    for entry in ENTRIES:
        if entry.key == key:
            return entry
    raise ValueError(f"no bench entry {key!r}; entries: {', '.join(e.key for e in ENTRIES)}")


def bench_profile(profile: str) -> str:
    """The bench profile for ``profile`` (``book`` -> ``book-bench``; a bench profile stays itself)."""
    if profile in BENCH_PROFILES:
        return profile
    name = f"{profile}-bench"
    if name not in BENCH_PROFILES:
        bases = ", ".join(BENCH_PROFILES.values())
        raise UsageError(f"no bench at profile {profile!r}; the bench has profiles {bases}")
    return name


def stages(entry: Entry) -> list[tuple[str, str]]:
    """(model, variant) of every run the entry needs, each after the runs it builds on."""
    from handlib.models.registry import get_model_spec

    order: list[tuple[str, str]] = []

    def visit(model: str, variant: str) -> None:
        spec = get_model_spec(model)
        for up in spec.for_variant(variant).upstreams:
            visit(up.model, up.variant or get_model_spec(up.model).default_variant)
        if (model, variant) not in order:
            order.append((model, variant))
    visit(entry.model, entry.variant)
    return order


def trainable_on(entry: Entry, dataset: str) -> bool:
    """Whether every stage of the entry can train on ``dataset``: a stage learning per-pixel part labels
    (Neverova et al.'s segmenter) needs a dataset that has them (the clean renders; not the real-like
    frames, which, like a real sensor's, come without)."""
    from handlib.dataset_registry import get_dataset
    from handlib.models.registry import get_model_spec

    has_parts = get_dataset(dataset).part_labels
    return all(has_parts or get_model_spec(m).for_variant(v).data != "parts" for m, v in stages(entry))


def _grid_plan(entries) -> list[tuple[str, tuple[str, ...]]]:
    """[(model, variants)] covering every stage of ``entries``, in a stage-respecting order."""
    plan: dict[str, list[str]] = {}
    for entry in entries:
        for model, variant in stages(entry):
            if variant not in plan.setdefault(model, []):
                plan[model].append(variant)
    return [(model, tuple(variants)) for model, variants in plan.items()]


@dataclass
class Bench:
    """The bench's grids ({model: Grid}) at one profile and training dataset."""

    profile: str
    dataset: str
    entries: tuple[Entry, ...]
    grids: dict = field(default_factory=dict)
    results_dir: Path | None = None

    def seeds(self, entry: Entry) -> list[int]:
        """The seeds the entry has a record for (none when the entry is not on this bench)."""
        if entry not in self.entries or entry.model not in self.grids:
            return []
        grid = self.grids[entry.model]
        return [s for s in grid.seeds if (entry.variant, s) in grid.records]

    def predictions(self, entry: Entry) -> dict:
        """{seed: (pred, truth)} of the entry's runs on their own test split."""
        grid = self.grids[entry.model]
        return {s: grid.predictions[entry.variant, s] for s in self.seeds(entry)}

    def records(self, entry: Entry) -> list[dict]:
        grid = self.grids[entry.model]
        return [grid.records[entry.variant, s] for s in self.seeds(entry)]

    def stage_records(self, entry: Entry, seed: int) -> list[dict]:
        """The records of every network the entry's pipeline trained for ``seed`` (missing ones left out)."""
        found = []
        for model, variant in stages(entry):
            record = self.grids[model].records.get((variant, seed))
            if record is not None:
                found.append(record)
        return found

    def lane_minutes(self, entry: Entry) -> float:
        """Minutes of one training lane (one core) the whole pipeline took, mean over seeds."""
        totals = [sum(r["wall_s"] for r in self.stage_records(entry, s)) / 60 for s in self.seeds(entry)]
        return sum(totals) / len(totals) if totals else float("nan")

    def frames_seen(self, entry: Entry) -> int:
        """Training frames the whole pipeline processed (every network its profile's pass)."""
        from handlib.profiles import get_profile
        from handlib.models.registry import get_model_spec

        total = 0
        for model, variant in stages(entry):
            spec = get_model_spec(model).for_variant(variant)
            prof = get_profile(self.profile, spec.chapter, variant)
            per = spec.clip_length if spec.input_kind == "clip" or spec.data == "clip_frames" else 1
            total += prof.train_frames * per * prof.epochs
        return total


def run_bench(profile: str = "book-bench", dataset: str = "synthetic", entries=ENTRIES, *, train: bool = True,
              results_dir: str | Path | None = None, **grid_kwargs) -> Bench:
    """Load (and, with ``train``, train what is missing of) every entry's pipeline at ``profile``; an entry
    that cannot train on ``dataset`` (:func:`trainable_on`) is a ValueError naming it."""
    from handlib.experiments import run_grids

    profile = bench_profile(profile)
    refused = [e.label for e in entries if not trainable_on(e, dataset)]
    if refused:
        raise ValueError(f"{', '.join(refused)} cannot train on {dataset!r}: a stage learns per-pixel part labels "
                         f"the dataset does not have; leave it out (one_bench.trainable_on)")
    grids = run_grids(_grid_plan(entries), profile=profile, dataset=dataset, train=train,
                      results_dir=results_dir, **grid_kwargs)
    return Bench(profile, dataset, tuple(entries), grids, Path(results_dir) if results_dir else None)


def cross_test(bench: Bench, entry: Entry, seed: int, test_dataset: str, *, compute: bool = True):
    """(pred, truth) of one trained run on ``test_dataset``'s test split (the bench's test frames rendered
    in that domain), from its stored file, else computed from the run's checkpoint and stored; None when
    neither is on this machine (or ``compute`` is False and no file is)."""
    import torch

    from handlib.experiments import load_trained
    from handlib.runs import load_splits, load_upstream, resolve_run, staged_forward
    from handlib.train import predict_xyz

    grid = bench.grids[entry.model]
    record = grid.records[entry.variant, seed]
    try:
        return results.load_predictions(record, bench.results_dir, tested_on=test_dataset)
    except FileNotFoundError:
        if not compute:
            return None
    net = load_trained(grid, entry.variant, seed)
    if net is None:
        return None
    spec, variant, prof, recipe, convention = resolve_run(entry.model, entry.variant, bench.dataset,
                                                          bench.profile, record["convention"], None)
    infer = spec.inference_forward
    upstream = load_upstream(spec, bench.dataset, bench.profile, seed, convention, prof.image_size, grid.runs_root)
    for stage, stage_net in zip(spec.upstreams, upstream):
        if stage.attach is not None:
            infer = staged_forward(infer, stage_net, stage.attach)
    test = load_splits(spec, test_dataset, prof, convention, "")["test"]
    with torch.no_grad():
        pred, truth = predict_xyz(net, spec.predict, test, forward=infer, batch_size=recipe.batch_size,
                                  channels_last=True)
    results.write_predictions(record, pred, truth, bench.results_dir, tested_on=test_dataset)
    return results.load_predictions(record, bench.results_dir, tested_on=test_dataset)


def pipeline_cost(entry: Entry, profile: str) -> dict:
    """Parameters and FLOPs per frame of what the entry runs at test time, at ``profile``'s sizes: its
    network (with the layers it embeds from earlier stages) plus every network attached before it."""
    from handlib.models.registry import get_model_spec
    from handlib.models.summary import count_flops, count_inference_parameters
    from handlib.profiles import get_profile
    from handlib.runs import staged_forward

    def build(model: str, variant: str):
        spec = get_model_spec(model).for_variant(variant)
        prof = get_profile(profile, spec.chapter, variant)
        return spec, prof, spec.build_for(variant, "nyu", prof).eval()

    spec, prof, net = build(entry.model, entry.variant)
    infer, params = spec.inference_forward, 0
    for up in spec.upstreams:          # an attached stage runs before the network on every frame
        if up.attach is not None:
            up_spec, up_prof, up_net = build(up.model, up.variant or get_model_spec(up.model).default_variant)
            params += count_inference_parameters(up_net, up_spec.example_input(1, up_prof.image_size),
                                                 up_spec.inference_forward)
            infer = staged_forward(infer, up_net, up.attach)
    inputs = spec.example_input(1, prof.image_size) if infer is spec.inference_forward else _one_frame(prof.image_size)
    frames = spec.clip_length if spec.input_kind == "clip" else 1
    params += count_inference_parameters(net, inputs, infer)
    # the FLOP counter sees every operation of the call, the attached stages' included
    return {"params": int(params), "flops_per_frame": int(count_flops(net, inputs, infer) // frames)}


def _one_frame(size: int) -> dict:
    """A batch of one rendered test frame: an attached stage (Liu et al.'s re-centring) needs a real
    frame's centre, cube and camera, not a random input."""
    from torch.utils.data import default_collate

    from handlib.dataset_registry import get_dataset

    frames = get_dataset("synthetic").load()(split="test", n=1, size=size, domain="synthetic", convention="nyu")
    return default_collate([frames[0]])


def leaderboard(profile: str = "book", dataset: str = "synthetic", *, results_dir: str | Path | None = None,
                entries=ENTRIES, cost: bool = True):
    """One row per entry from the committed records: seeds, mean error ± std over seeds, success-curve
    AUC over 0-80 mm (mean over seeds), parameters and FLOPs per frame (``cost``). A pandas DataFrame."""
    import pandas as pd

    from handlib.metrics import joint_errors, mean_error, success_auc

    usable = tuple(e for e in entries if trainable_on(e, dataset))
    bench = run_bench(profile, dataset, usable, train=False, results_dir=results_dir, progress=False)
    rows = []
    for entry in entries:
        runs = bench.predictions(entry) if entry in usable else {}
        errors = [mean_error(joint_errors(*runs[s])) for s in sorted(runs)]
        aucs = [success_auc(joint_errors(*runs[s]), AUC_MAX_MM) for s in sorted(runs)]
        row = {"key": entry.key, "model": entry.label, "variant": entry.variant, "seeds": len(errors),
               "mean_error_mm": fmean(errors) if errors else nan, "std_mm": stdev(errors) if len(errors) > 1 else nan,
               "auc": fmean(aucs) if aucs else nan}
        if cost:
            row.update(pipeline_cost(entry, bench.profile))
        rows.append(row)
    return pd.DataFrame(rows)

