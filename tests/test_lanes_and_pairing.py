"""Issue 13: paired variants (shared layers start equal for a seed), a profile's recipe setting, and
runs trained side by side in lanes giving what the same runs give in this process."""
import os

import pytest
import torch

from handlib import experiments
from handlib.device import seed_everything
from handlib.models import crossinfonet as cin
from handlib.profiles import get_profile
from handlib.recipe import Recipe, recipe_for_profile, with_overrides


def _built(variant: str, seed: int):
    seed_everything(seed)
    return dict(cin.build(variant=variant).named_parameters())


def test_same_seed_starts_every_variants_shared_layers_from_the_same_weights():
    base, cross_hm = _built("base", 3), _built("cross_hm", 3)
    shared = [n for n, p in base.items() if n in cross_hm and cross_hm[n].shape == p.shape]
    assert len(shared) > 100 and "stem.conv.weight" in shared
    # cross_hm builds heat-map layers before the branches: construction order must not matter
    assert all(torch.equal(base[n], cross_hm[n]) for n in shared)
    other = _built("base", 4)
    assert not torch.equal(base["stem.conv.weight"], other["stem.conv.weight"])


def test_profile_recipe_setting_replaces_the_papers_schedule_and_names_bad_fields():
    recipe = recipe_for_profile(cin.RECIPE, get_profile("book", "crossinfonet"))
    assert (recipe.schedule, recipe.lr, recipe.warmup_fraction) == ("cosine", 2e-3, 0.05)
    assert recipe.optimizer == cin.RECIPE.optimizer and recipe.weight_decay == cin.RECIPE.weight_decay
    assert recipe_for_profile(cin.RECIPE, get_profile("full", "crossinfonet")) == cin.RECIPE
    with pytest.raises(ValueError, match="somewhere: cannot set epochs, lrr"):
        with_overrides(Recipe(), {"lrr": 1.0, "epochs": 3}, "somewhere")


def test_runs_trained_in_lanes_equal_the_same_runs_trained_here(tmp_path):
    kwargs = dict(profile="smoke", variants=["base"], seeds=[0, 1], progress=False)
    laned = experiments.run_grid("crossinfonet", lanes=2, results_dir=tmp_path / "a",
                                 runs_root=tmp_path / "ra", **kwargs)
    assert sorted(laned.trained) == [("base", 0), ("base", 1)]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))     # what each of the 2 lanes runs
    try:
        here = experiments.run_grid("crossinfonet", lanes=1, results_dir=tmp_path / "b",
                                    runs_root=tmp_path / "rb", **kwargs)
    finally:
        torch.set_num_threads(threads)
    for seed in (0, 1):
        a, b = laned.predictions["base", seed][0], here.predictions["base", seed][0]
        assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    assert not torch.equal(torch.as_tensor(laned.predictions["base", 0][0]),
                           torch.as_tensor(laned.predictions["base", 1][0]))


def test_a_stage_starts_after_the_runs_it_builds_on(monkeypatch):
    from handlib import experiments, runs

    trained = []
    monkeypatch.setattr(runs, "train_and_record", lambda **job: (trained.append((job["variant"], job["seed"])) or
                                                                 {"variant": job["variant"]}, None, None))
    jobs = {(v, s): {"model": "m", "variant": v, "seed": s, "out": "x"}
            for v in ("independent", "first", "second", "third") for s in (0, 1)}
    after = {key: [] for key in jobs}
    for s in (0, 1):
        after["second", s] = [("first", s)]
        after["third", s] = [("second", s), ("first", s)]
    finished = [key for key, _ in experiments._train_all(jobs, after, 1, progress=False)]
    assert sorted(finished) == sorted(jobs) and finished == trained
    for key, ups in after.items():
        assert all(finished.index(up) < finished.index(key) for up in ups), key
    assert finished[0] == ("first", 0)                  # the run most others wait on goes first
    cyclic = {"a": {"upstreams": ["b"]}, "b": {"upstreams": ["a"]}}
    import pytest

    class Spec:        # a stand-in spec whose variants build on each other
        name = "m"

        def for_variant(self, v):
            from types import SimpleNamespace
            return SimpleNamespace(upstreams=[SimpleNamespace(model="m", variant=u) for u in cyclic[v]["upstreams"]])
    with pytest.raises(ValueError, match="depends on itself"):
        experiments.stage_depths(Spec(), ("a", "b"))
