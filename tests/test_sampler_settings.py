"""Samplers as data: parameters, labels and sample-id inputs derive from the dataclass fields of each sampler."""

from __future__ import annotations

import dataclasses
import json

import pytest

from samplers import SAMPLERS, Sampler, Zeta, build_sampler, setting
from zeta_eval.identity import sampler_key

INF = float("inf")

# Backward compatibility: params() (as JSON, key order included), display_name() and sampler_key() of these settings
# were computed on main BEFORE samplers became dataclasses (commit 3d6998e). Every sample id of every existing result
# folder derives from them: they must never change.
PINNED = [
    ('standard', {},
     '{"gamma1": 5.5}',
     'standard γ=5.5', 'standard-1867a353', 'standard-32dba835'),
    ('standard', {'gamma1': 3},
     '{"gamma1": 3.0}',
     'standard γ=3', 'standard-1d138ecf', 'standard-496bfde8'),
    ('standard', {'gamma1': 7.5, 'steps': 124},
     '{"gamma1": 7.5}',
     'standard γ=7.5 · 124 steps', 'standard-26d0e20b', 'standard-b041000d'),
    ('standard', {'label': 'baseline'},
     '{"gamma1": 5.5}',
     'baseline', 'standard-1867a353', 'standard-32dba835'),
    ('standard', {'match_nfe': 'zeta'},
     '{"gamma1": 5.5}',
     'standard γ=5.5', 'standard-1867a353', 'standard-32dba835'),
    ('cfgpp', {},
     '{"gamma1": 0.6}',
     'cfgpp λ=0.6', 'cfgpp-5a400bfb', 'cfgpp-e6ffd47b'),
    ('cfgpp', {'gamma1': 1},
     '{"gamma1": 1.0}',
     'cfgpp λ=1', 'cfgpp-08489040', 'cfgpp-3cd0db39'),
    ('cfgpp', {'gamma1': 0.2, 'steps': 30},
     '{"gamma1": 0.2}',
     'cfgpp λ=0.2 · 30 steps', 'cfgpp-0451db75', 'cfgpp-94d384ca'),
    ('seg', {},
     '{"gamma1": 5.5, "seg_scale": 3.0, "blur_sigma": 10.0, "layers": null}',
     'seg γ=5.5 seg=3 σ=10', 'seg-8f37e3ea', 'seg-83b9f144'),
    ('seg', {'blur_sigma': INF},
     '{"gamma1": 5.5, "seg_scale": 3.0, "blur_sigma": "inf", "layers": null}',
     'seg γ=5.5 seg=3 σ=inf', 'seg-726ec6a4', 'seg-8467f273'),
    ('seg', {'layers': ['mid_block'], 'seg_scale': 2},
     '{"gamma1": 5.5, "seg_scale": 2.0, "blur_sigma": 10.0, "layers": ["mid_block"]}',
     'seg γ=5.5 seg=2 σ=10', 'seg-ff4454e3', 'seg-ec9cfc5b'),
    ('seg', {'gamma1': 3, 'blur_sigma': 5},
     '{"gamma1": 3.0, "seg_scale": 3.0, "blur_sigma": 5.0, "layers": null}',
     'seg γ=3 seg=3 σ=5', 'seg-bae9efaa', 'seg-c0b68c3b'),
    ('zigzag', {},
     '{"gamma1": 5.5, "gamma2": 0.0, "lambda_steps": null, "rounds": 1, "zag_timestep": "current", "zag_evaluation": "network", "official_compat": false}',
     'zigzag γ=5.5', 'zigzag-bbc6e6af', 'zigzag-53f9cf7c'),
    ('zigzag', {'gamma2': 1},
     '{"gamma1": 5.5, "gamma2": 1.0, "lambda_steps": null, "rounds": 1, "zag_timestep": "current", "zag_evaluation": "network", "official_compat": false}',
     'zigzag γ=5.5 γ2=1', 'zigzag-8f97ba21', 'zigzag-dad729be'),
    ('zigzag', {'gamma2': 0.5, 'lambda_steps': 3, 'rounds': 2},
     '{"gamma1": 5.5, "gamma2": 0.5, "lambda_steps": 3, "rounds": 2, "zag_timestep": "current", "zag_evaluation": "network", "official_compat": false}',
     'zigzag γ=5.5 γ2=0.5 λ=3 rounds=2', 'zigzag-98b31463', 'zigzag-a1932f8f'),
    ('zigzag', {'zag_timestep': 'next'},
     '{"gamma1": 5.5, "gamma2": 0.0, "lambda_steps": null, "rounds": 1, "zag_timestep": "next", "zag_evaluation": "network", "official_compat": false}',
     'zigzag γ=5.5 zag@t_next', 'zigzag-b4d825ef', 'zigzag-6f497072'),
    ('zigzag', {'zag_evaluation': 'anchor'},
     '{"gamma1": 5.5, "gamma2": 0.0, "lambda_steps": null, "rounds": 1, "zag_timestep": "current", "zag_evaluation": "anchor", "official_compat": false}',
     'zigzag γ=5.5 zag@anchor', 'zigzag-410e711b', 'zigzag-376bc0b0'),
    ('zigzag', {'official_compat': True},
     '{"gamma1": 5.5, "gamma2": 0.0, "lambda_steps": null, "rounds": 1, "zag_timestep": "current", "zag_evaluation": "network", "official_compat": true}',
     'zigzag γ=5.5 official', 'zigzag-0ba72e16', 'zigzag-43f2b653'),
    ('zigzag', {'gamma1': 3, 'steps': 20},
     '{"gamma1": 3.0, "gamma2": 0.0, "lambda_steps": null, "rounds": 1, "zag_timestep": "current", "zag_evaluation": "network", "official_compat": false}',
     'zigzag γ=3 · 20 steps', 'zigzag-de2c64e7', 'zigzag-6b2cd5ff'),
    ('implicit_zigzag', {},
     '{"gamma1": 5.5, "gamma2": 0.0, "lambda_steps": null}',
     'implicit_zigzag γ=5.5', 'implicit_zigzag-d628eba4', 'implicit_zigzag-ffd0ff5d'),
    ('implicit_zigzag', {'gamma2': 0.5, 'lambda_steps': 4},
     '{"gamma1": 5.5, "gamma2": 0.5, "lambda_steps": 4}',
     'implicit_zigzag γ=5.5 γ2=0.5 λ=4', 'implicit_zigzag-b556106b', 'implicit_zigzag-756ebc94'),
    ('implicit_zigzag', {'gamma1': 3},
     '{"gamma1": 3.0, "gamma2": 0.0, "lambda_steps": null}',
     'implicit_zigzag γ=3', 'implicit_zigzag-eca7b8e6', 'implicit_zigzag-72d1abdc'),
    ('zeta', {},
     '{"gamma1": 5.5, "gamma2": 0.0, "warmup_steps": 3, "window_start": null, "window_end": null}',
     'zeta γ=5.5 τ=3', 'zeta-47361520', 'zeta-93e57007'),
    ('zeta', {'gamma1': 3, 'warmup_steps': 2},
     '{"gamma1": 3.0, "gamma2": 0.0, "warmup_steps": 2, "window_start": null, "window_end": null}',
     'zeta γ=3 τ=2', 'zeta-79a045f9', 'zeta-988809ab'),
    ('zeta', {'gamma2': 1.5},
     '{"gamma1": 5.5, "gamma2": 1.5, "warmup_steps": 3, "window_start": null, "window_end": null}',
     'zeta γ=5.5 γ2=1.5 τ=3', 'zeta-58db96c2', 'zeta-6eb9e42e'),
    ('zeta', {'window_start': 4, 'window_end': 8},
     '{"gamma1": 5.5, "gamma2": 0.0, "warmup_steps": 3, "window_start": 4, "window_end": 8}',
     'zeta γ=5.5 τ=3 window=[4,8)', 'zeta-82a099cc', 'zeta-b5cfa5f1'),
    ('zeta', {'window_end': 8},
     '{"gamma1": 5.5, "gamma2": 0.0, "warmup_steps": 3, "window_start": null, "window_end": 8}',
     'zeta γ=5.5 τ=3 window=[3,8)', 'zeta-57c17a8e', 'zeta-70e4452b'),
    ('zeta', {'window_start': 5},
     '{"gamma1": 5.5, "gamma2": 0.0, "warmup_steps": 3, "window_start": 5, "window_end": null}',
     'zeta γ=5.5 τ=3 window=[5,T-1)', 'zeta-64feb65b', 'zeta-79f5a21d'),
    ('zeta', {'surrogate_scale': 0.5},
     '{"gamma1": 5.5, "gamma2": 0.0, "warmup_steps": 3, "window_start": null, "window_end": null, "surrogate_scale": 0.5}',
     'zeta γ=5.5 τ=3 scale=0.5', 'zeta-b5c5af54', 'zeta-8e9f08df'),
    ('zeta', {'surrogate_scale': 1},
     '{"gamma1": 5.5, "gamma2": 0.0, "warmup_steps": 3, "window_start": null, "window_end": null}',
     'zeta γ=5.5 τ=3', 'zeta-47361520', 'zeta-93e57007'),
    ('zeta', {'rescale_surrogate': True},
     '{"gamma1": 5.5, "gamma2": 0.0, "warmup_steps": 3, "window_start": null, "window_end": null, "rescale_surrogate": true}',
     'zeta γ=5.5 τ=3 rescaled', 'zeta-7f3ccce6', 'zeta-3428f0d3'),
    ('zeta', {'adaptive_warmup': True},
     '{"gamma1": 5.5, "gamma2": 0.0, "warmup_steps": 3, "window_start": null, "window_end": null, "adaptive_warmup": true, "adaptive_threshold": 0.9, "max_warmup_steps": null}',
     'zeta γ=5.5 τ=3+adaptive', 'zeta-6df7d096', 'zeta-2c61bd95'),
    ('zeta', {'adaptive_warmup': True, 'adaptive_threshold': 0.95, 'max_warmup_steps': 6},
     '{"gamma1": 5.5, "gamma2": 0.0, "warmup_steps": 3, "window_start": null, "window_end": null, "adaptive_warmup": true, "adaptive_threshold": 0.95, "max_warmup_steps": 6}',
     'zeta γ=5.5 τ=3+adaptive', 'zeta-3f667033', 'zeta-018433ef'),
    ('zeta', {'probe': True},
     '{"gamma1": 5.5, "gamma2": 0.0, "warmup_steps": 3, "window_start": null, "window_end": null}',
     'zeta γ=5.5 τ=3', 'zeta-47361520', 'zeta-93e57007'),
    ('zeta', {'label': 'mine', 'gamma1': 4},
     '{"gamma1": 4.0, "gamma2": 0.0, "warmup_steps": 3, "window_start": null, "window_end": null}',
     'mine', 'zeta-fb8a5daa', 'zeta-37fdf1f1'),
    ('zeta', {'steps': 20, 'gamma1': 5},
     '{"gamma1": 5.0, "gamma2": 0.0, "warmup_steps": 3, "window_start": null, "window_end": null}',
     'zeta γ=5 τ=3 · 20 steps', 'zeta-a45cb505', 'zeta-e03f0352'),
]


@pytest.mark.parametrize("name,kwargs,params,label,key_10,key_50", PINNED)
def test_params_labels_and_keys_are_those_of_earlier_results(name, kwargs, params, label, key_10, key_50):
    sampler = build_sampler(name, **kwargs)
    assert json.dumps(sampler.params(), ensure_ascii=False) == params
    assert sampler.display_name() == label
    assert sampler_key(sampler, 10, "default") == key_10
    assert sampler_key(sampler, 50, [999, 500, 1]) == key_50


#: a valid value other than the default for every setting of the built-in samplers
OTHER_VALUE = {"gamma1": 0.3, "gamma2": 1.0, "lambda_steps": 2, "rounds": 2, "zag_timestep": "next",
               "zag_evaluation": "anchor", "official_compat": True, "warmup_steps": 2, "window_start": 4,
               "window_end": 7, "surrogate_scale": 0.5, "rescale_surrogate": True, "adaptive_warmup": True,
               "adaptive_threshold": 0.5, "max_warmup_steps": 5, "seg_scale": 1.0, "blur_sigma": 2.0,
               "layers": ["down_blocks.2"], "steps": 7, "label": "mine", "match_nfe": "zeta", "probe": True,
               "twins": True, "gamma_schedule": [2.0, 3.0]}
#: settings that change no output: the only ones two different sample ids may not tell apart
NOT_IN_ID = {"label", "match_nfe", "probe", "twins"}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_setting_that_changes_the_output_changes_the_sample_id(name):
    """Forgetting a setting in params() would merge two sample ids: params come from the fields, so every field but
    those that change no output is part of the key (a setting that needs a switch is tried with the switch on)."""
    cls = SAMPLERS[name]
    for f in dataclasses.fields(cls):
        assert f.name in OTHER_VALUE, f"give {name}.{f.name} another valid value in OTHER_VALUE"
        switch = {f.metadata["requires"]: True} if f.metadata.get("requires") else {}
        base, other = cls(**switch), cls(**switch, **{f.name: OTHER_VALUE[f.name]})
        changed = sampler_key(base, 10, "default") != sampler_key(other, 10, "default")
        assert changed == (f.name not in NOT_IN_ID), f"{name}.{f.name}"


def test_a_setting_is_checked_where_it_is_declared():
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 1, got 0"):
        Zeta(warmup_steps=0)
    with pytest.raises(ValueError, match="surrogate_scale must be a finite number"):
        Zeta(surrogate_scale=float("nan"))
    assert Zeta(gamma1=3).gamma1 == 3.0 and isinstance(Zeta(gamma1=3).gamma1, float)


def test_a_sampler_that_declares_settings_without_dataclass_is_refused():
    """Its settings would be plain class attributes, outside params(): they could never reach a sample id."""
    class Forgot(Zeta):
        name = "forgot"
        strength: float = 2.0

    with pytest.raises(TypeError, match="Forgot declares the settings strength but is not decorated with @dataclass"):
        Forgot()


def test_a_new_dataclass_sampler_gets_params_labels_and_checks_from_its_fields():
    @dataclasses.dataclass(kw_only=True, eq=False)
    class Damped(Zeta):
        name = "damped"
        damping: float = setting(0.0, check=lambda n, v: float(v), identity="if_changed", label="d={:g}")

    assert Damped().params() == Zeta().params()
    assert Damped(damping=1).params() == {**Zeta().params(), "damping": 1.0}
    assert Damped(damping=0.5).display_name() == "damped γ=5.5 τ=3 d=0.5"
    assert isinstance(Damped(), Sampler)
