"""ShapeBench world, prompts and the held-out evaluation set."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from zeta_eval.shapebench import evaluation_set, render_metadata, sample_training_caption
from zeta_eval.shapebench import prompts as P
from zeta_eval.shapebench import world as W


def test_evaluation_set_sizes_and_balance():
    full = evaluation_set("full")
    assert len(full) == 720
    assert collections.Counter(it["tag"] for it in full) == {t: 120 for t in P.TASKS}
    demo = evaluation_set("demo")
    assert collections.Counter(it["tag"] for it in demo) == {t: 8 for t in P.TASKS}
    smoke = evaluation_set("smoke")
    assert len(smoke) == 8 and {it["tag"] for it in smoke} == set(P.TASKS)
    assert len(evaluation_set("position")) == 120 and {it["tag"] for it in evaluation_set("position")} == {"position"}
    # demo items are the first items of each task: 8 distinct prompts where the task has that many
    for t in P.TASKS:
        prompts = [it["prompt"] for it in demo if it["tag"] == t]
        assert len(set(prompts)) == min(8, len(P.task_prompts(t)))


def test_evaluation_set_is_stable_and_json_serialisable():
    a, b = evaluation_set("full"), evaluation_set("full")
    assert a == b
    ids = [it["id"] for it in a]
    assert len(set(ids)) == len(ids)
    assert len({(it["prompt"], it["seed"]) for it in a}) == len(a)
    # pinned values: ids, seeds and hold-out choices must not drift between releases
    assert a[0] == {"id": "single_object/000", "prompt": "a circle", "seed": a[0]["seed"], "tag": "single_object",
                    "include": [{"class": "circle", "count": 1}]}
    assert a[0]["seed"] == P._seed("single_object/000")
    assert [it["prompt"] for it in evaluation_set("smoke")][:6] == [
        "a circle", "a circle and a star", "two circles", "a red circle", "a circle left of a square",
        P.task_prompts("color_attr")[0]["prompt"]]
    json.dumps(a)
    a[0]["include"][0]["count"] = 99  # callers get copies
    assert evaluation_set("full")[0]["include"][0]["count"] == 1


def test_metadata_mirrors_geneval():
    by_tag = {it["tag"]: it for it in evaluation_set("full")}
    assert by_tag["counting"]["include"][0]["count"] + 1 == by_tag["counting"]["exclude"][0]["count"]
    assert set(by_tag["colors"]["include"][0]) == {"class", "count", "color"}
    pos = P.position("circle", "left of", "cross")
    # GenEval: "a dog right of a teddy bear" -> include [teddy bear, dog with position ["right of", 0]]
    assert pos == {"tag": "position", "prompt": "a circle left of a cross",
                   "include": [{"class": "cross", "count": 1}, {"class": "circle", "count": 1, "position": ["left of", 0]}]}
    ca = P.color_attr("red", "square", "green", "circle")
    assert ca["prompt"] == "a red square and a green circle"
    assert ca["include"] == [{"class": "square", "count": 1, "color": "red"}, {"class": "circle", "count": 1, "color": "green"}]
    assert P.counting("star", 3)["prompt"] == "three stars"
    assert P.counting("cross", 2)["prompt"] == "two crosses"
    for it in evaluation_set("full"):
        assert set(it) <= {"id", "prompt", "seed", "tag", "include", "exclude"}
        assert ("exclude" in it) == (it["tag"] == "counting")


def test_bad_subset_is_one_clear_error():
    with pytest.raises(ValueError, match=r"subset must be one of full, demo, smoke"):
        evaluation_set("validation")


def test_compositional_prompts_are_held_out_of_training():
    rng = np.random.default_rng(123)
    train = [sample_training_caption(rng) for _ in range(30000)]
    train_prompts = {m["prompt"] for m in train}
    for it in evaluation_set("full"):
        if it["tag"] in ("two_object", "position", "color_attr"):
            assert it["prompt"] not in train_prompts, it["prompt"]
    # stronger: a held-out position group never appears in training in any wording (coloured or not)
    held_pos = set(P.HELD_OUT_POSITION)
    held_ca = set(P.held_out_color_attr())
    for m in train:
        if m["tag"] == "position":
            b, a = m["include"]
            assert (frozenset({a["class"], b["class"]}), P.AXIS[a["position"][0]]) not in held_pos
        bound = {(c.get("color"), c["class"]) for c in m["include"]}
        if len(bound) == 2 and all(c for c, _ in bound):
            assert frozenset(bound) not in held_ca
    # every task's grammar is covered in training, and the non-compositional evaluation prompts are trained on
    assert {m["tag"] for m in train} == set(P.TASKS)
    for t in ("single_object", "counting", "colors"):
        assert {m["prompt"] for m in P.task_prompts(t)} <= train_prompts
    assert len(held_ca) == 60 and len(P.task_prompts("color_attr")) == 120


def test_training_captions_are_in_vocabulary_and_deterministic():
    vocab = set(P.vocabulary())
    a = [sample_training_caption(np.random.default_rng(5)) for _ in range(3)]
    b = [sample_training_caption(np.random.default_rng(5)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(0)
    for _ in range(2000):
        assert set(sample_training_caption(rng)["prompt"].split()) <= vocab


def test_scene_layout_matches_metadata():
    for it in evaluation_set("full")[::7]:
        rng = np.random.default_rng(it["seed"])
        objs = W.scene_from_metadata(it, rng)
        want = collections.Counter()
        for c in it["include"]:
            want[c["class"]] += c["count"]
        assert collections.Counter(o.shape for o in objs) == want
        for i, o in enumerate(objs):
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 and 0 <= y0 and x1 <= W.IMAGE_SIZE and y1 <= W.IMAGE_SIZE
            for q in objs[i + 1:]:
                assert W._separated(o, q)
        if it["tag"] == "position":
            b, a = objs
            assert W.relation_holds(a, b, it["include"][1]["position"][0])
        for c in it["include"]:
            if "color" in c:
                assert {o.color for o in objs if o.shape == c["class"]} == {c["color"]}


def test_render_is_deterministic_and_uses_the_palette():
    meta = P.colors("star", "blue")
    a, b = render_metadata(meta, 7), render_metadata(meta, 7)
    assert a.dtype == np.uint8 and a.shape == (32, 32, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render_metadata(meta, 8))
    colours = {tuple(p) for p in a.reshape(-1, 3)}
    assert W.BACKGROUND in colours and W.PALETTE["blue"] in colours
    # anti-aliased edges: mixtures of the two, nothing else
    bg, fg = np.array(W.BACKGROUND, float), np.array(W.PALETTE["blue"], float)
    for c in colours:
        t = np.dot(np.array(c) - bg, fg - bg) / np.dot(fg - bg, fg - bg)
        assert np.abs(bg + t * (fg - bg) - np.array(c)).max() <= 1.0


def test_shapes_fill_their_box_and_differ():
    for s in W.SHAPES:
        cov = W.coverage(s, 16)
        assert cov[:, 0].max() > 0 and cov[:, -1].max() > 0 and cov[0].max() > 0 and cov[-1].max() > 0
    areas = {s: float(W.coverage(s, 16).mean()) for s in W.SHAPES}
    assert areas["square"] == pytest.approx(1.0)
    assert areas["circle"] == pytest.approx(np.pi / 4, abs=0.01)
    assert areas["triangle"] == pytest.approx(0.5, abs=0.01)
    assert areas["star"] < areas["cross"] < areas["circle"]
    with pytest.raises(ValueError, match="shape must be one of circle, square, triangle, star, cross"):
        W.coverage("hexagon", 12)
