"""The W&B sweep format: parsing, errors, and each distribution's samples (bounds and shape,
checked against scipy's distributions), through Optuna's samplers as the agents use them."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from scipy import stats

from jno_core.errors import ConfigError
from jno_core.sweep import parse_sweep_config
from jno_core.sweep._space import engine_params, make_pruner, suggest, to_config

optuna.logging.set_verbosity(optuna.logging.WARNING)

# the spec's example (003, "Hyperparameter Sweeps"), as W&B documents it
SPEC = {
    "method": "random",
    "metric": {"name": "val/accuracy", "goal": "maximize"},
    "parameters": {
        "learning_rate": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
        "batch_size": {"values": [32, 64, 128, 256]},
        "num_layers": {"values": [2, 3, 4, 5]},
        "hidden_size": {"distribution": "q_uniform", "min": 128, "max": 512, "q": 64},
        "dropout": {"distribution": "uniform", "min": 0.1, "max": 0.5},
    },
}


def _samples(params: dict, n: int = 400, seed: int = 0) -> list[dict]:
    cfg = parse_sweep_config({"method": "random", "parameters": params})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        t = study.ask()
        out.append(suggest(t, cfg))
        study.tell(t, 0.0)
    return out


def test_spec_example_parses_and_samples_within_bounds():
    cfg = parse_sweep_config(SPEC)
    assert cfg.method == "random" and cfg.goal == "maximize" and cfg.metric["summary"] == "last"
    assert [p.name for p in cfg.params] == list(SPEC["parameters"])
    s = _samples(SPEC["parameters"], 300)
    lr = np.array([x["learning_rate"] for x in s])
    assert lr.min() >= 1e-5 and lr.max() <= 1e-2
    assert {x["batch_size"] for x in s} == {32, 64, 128, 256}
    hs = [x["hidden_size"] for x in s]
    assert all(isinstance(h, int) and h % 64 == 0 and 128 <= h <= 512 for h in hs)
    assert set(hs) == {128, 192, 256, 320, 384, 448, 512}
    d = np.array([x["dropout"] for x in s])
    assert d.min() >= 0.1 and d.max() <= 0.5


def test_log_uniform_values_is_uniform_in_log_space():
    lr = np.array([x["lr"] for x in _samples({"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}}, 600)])
    u = (np.log(lr) - np.log(1e-5)) / (np.log(1e-1) - np.log(1e-5))
    assert stats.kstest(u, "uniform").pvalue > 0.01
    # not uniform in linear space: most mass is far below the midpoint
    assert np.mean(lr < 0.05) > 0.9


def test_q_distributions_are_multiples_of_q():
    s = _samples({
        "a": {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25},
        "b": {"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 10},
        "c": {"distribution": "q_normal", "mu": 5.0, "sigma": 2.0, "q": 0.5},
    }, 300)
    a = np.array([x["a"] for x in s])
    assert np.allclose(a / 0.25, np.round(a / 0.25)) and a.min() >= 0 and a.max() <= 1
    assert set(np.round(a, 9)) == {0.0, 0.25, 0.5, 0.75, 1.0}
    b = [x["b"] for x in s]
    assert all(isinstance(v, int) and v % 10 == 0 and 0 <= v <= 1000 for v in b)
    c = np.array([x["c"] for x in s])
    assert np.allclose(c * 2, np.round(c * 2))


def test_int_uniform_and_categorical_probabilities():
    s = _samples({"n": {"min": 2, "max": 6}, "act": {"values": ["tanh", "relu", "gelu"],
                                                      "probabilities": [0.7, 0.2, 0.1]}}, 1000)
    n = [x["n"] for x in s]
    assert set(n) == {2, 3, 4, 5, 6} and all(isinstance(v, int) for v in n)
    counts = np.array([sum(x["act"] == a for x in s) for a in ("tanh", "relu", "gelu")])
    assert stats.chisquare(counts, 1000 * np.array([0.7, 0.2, 0.1])).pvalue > 0.001


def test_normal_and_log_normal_match_their_moments():
    s = _samples({"z": {"distribution": "normal", "mu": 3.0, "sigma": 0.5},
                  "w": {"distribution": "log_normal", "mu": -2.0, "sigma": 0.3}}, 800)
    z = np.array([x["z"] for x in s])
    assert stats.kstest(z, "norm", args=(3.0, 0.5)).pvalue > 0.01
    w = np.array([x["w"] for x in s])
    assert (w > 0).all() and stats.kstest(np.log(w), "norm", args=(-2.0, 0.3)).pvalue > 0.01


def test_log_uniform_takes_log_bounds_and_constants_pass_through():
    s = _samples({"x": {"distribution": "log_uniform", "min": 0.0, "max": 2.0}, "k": {"value": "fixed"}}, 200)
    x = np.array([v["x"] for v in s])
    assert x.min() >= 1.0 - 1e-12 and x.max() <= math.exp(2.0) + 1e-9
    assert all(v["k"] == "fixed" for v in s)


def test_nested_parameters_make_a_nested_config():
    cfg = parse_sweep_config({"method": "grid", "parameters": {
        "optimizer": {"parameters": {"lr": {"values": [0.1, 0.01]}, "name": {"value": "adam"}}},
        "layers": {"values": [[32, 32], [64]]}}})
    pts = cfg.grid_points()
    assert len(pts) == 4
    conf = to_config(cfg, engine_params(cfg, pts[1]))
    assert conf == {"optimizer": {"lr": 0.1, "name": "adam"}, "layers": [64]}


def test_grid_of_q_uniform_and_int_uniform():
    cfg = parse_sweep_config({"method": "grid", "run_cap": 5, "parameters": {
        "a": {"distribution": "int_uniform", "min": 1, "max": 3}, "b": {"distribution": "q_uniform", "min": 0, "max": 4, "q": 2}}})
    assert cfg.grid_points() == [{"a": 1, "b": 0}, {"a": 1, "b": 2}, {"a": 1, "b": 4}, {"a": 2, "b": 0}, {"a": 2, "b": 2}]


@pytest.mark.parametrize("raw, words", [
    ({"method": "random", "parameters": {"x": {"values": [1]}}, "metrc": {}}, ["'metrc'", "metric"]),
    ({"method": "random", "parameters": {"x": {"distribution": "lognormal", "mu": 0}}}, ["'lognormal'", "log_normal"]),
    ({"method": "random", "parameters": {"x": {"distribution": "uniform", "min": 1, "max": 2, "sigma": 1}}}, ["sigma"]),
    ({"method": "random", "parameters": {"x": {"vales": [1]}}}, ["'vales'", "values"]),
    ({"method": "annealing", "parameters": {"x": {"value": 1}}}, ["'annealing'", "bayes"]),
    ({"method": "grid", "parameters": {"x": {"min": 0.0, "max": 1.0}}}, ["'x'", "grid"]),
    ({"method": "random", "parameters": {"x": {"distribution": "log_uniform_values", "min": 0, "max": 1}}}, ["min > 0"]),
    ({"method": "random", "metric": {"name": "m", "goal": "max"}, "parameters": {"x": {"value": 1}}}, ["maximize"]),
    ({"method": "random", "early_terminate": {"type": "median"}, "parameters": {"x": {"value": 1}}}, ["hyperband"]),
    ({"method": "random", "parameters": {"x": {"distribution": "beta"}}}, ["'beta'", "not supported"]),
])
def test_errors_name_the_key_and_the_valid_ones(raw, words):
    with pytest.raises(ConfigError) as e:
        parse_sweep_config(raw)
    for w in words:
        assert w in str(e.value)


def test_hyperband_maps_to_optuna():
    cfg = parse_sweep_config({**SPEC, "early_terminate": {"type": "hyperband", "min_iter": 3, "eta": 2}})
    p = make_pruner(cfg)
    assert isinstance(p, optuna.pruners.HyperbandPruner)
    cfg2 = parse_sweep_config({**SPEC, "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2}})
    assert isinstance(make_pruner(cfg2), optuna.pruners.HyperbandPruner)


def test_yaml_file_round_trip(tmp_path):
    from jno_core.sweep import load_sweep_file

    f = tmp_path / "s.yaml"
    f.write_text("method: bayes\nmetric: {name: val/l2_rel}\nparameters:\n  lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}\n")
    cfg = load_sweep_file(f)
    assert cfg.method == "bayes" and cfg.metric == {"name": "val/l2_rel", "goal": "minimize", "summary": "last"}


def test_wandb_command_macros(tmp_path):
    import json as _json
    import sys

    from jno_core.sweep._agent import build_command

    vals = {"lr": 0.01, "opt": {"name": "adam"}, "flag": True, "off": False, "layers": [8, 8]}
    cmd = build_command(["${env}", "${interpreter}", "${program}", "${args}"], vals, program="train.py")
    assert cmd == [sys.executable, "train.py", "--lr=0.01", "--opt.name=adam", "--flag=True", "--off=False",
                   "--layers=[8, 8]"]
    assert build_command(["x", "${args_no_boolean_flags}"], vals)[1:] == ["--lr=0.01", "--opt.name=adam", "--flag",
                                                                        "--layers=[8, 8]"]
    assert build_command(["x", "${args_no_hyphens}"], {"a": 1}) == ["x", "a=1"]
    f = tmp_path / "a.json"
    assert build_command(["x", "${args_json_file}"], vals, args_file=f) == ["x", str(f)]
    assert _json.loads(f.read_text()) == vals
    with pytest.raises(ConfigError, match="program"):
        build_command(["${program}"], vals)
