"""The ShapeBench oracle: GenEval rules, validation on ground-truth renders, degraded renders and wrong prompts."""

from __future__ import annotations

import collections
import itertools
import json

import numpy as np
import pytest
import torch

from metrics.shapebench import (REASONS, Detection, ShapeBenchScore, analyze, judge, judge_detections,
                                relative_position)
from zeta_eval.shapebench import evaluation_set, render_metadata
from datamodules.shapebench import prompts as P
from datamodules.shapebench import world as W
from zeta_eval.shapebench.validation import canonical_scene, degrade, near_misses, other_prompt, validation_table

#: degradation of generated images, above the 90th percentile measured on 120 samples of the model at step 2,241
#: (tint 9.1, noise 3.5, blur 0.5; benchmarks/shapebench_oracle_check.py, docs/shapebench/README.md):
#: background tint (per channel, 0..255), pixel noise (std, 0..255), edge blur (Gaussian sigma, pixels)
MEASURED_TINT = 10.0
MEASURED_NOISE = 6.0
MEASURED_BLUR = 0.5


def per_task_accuracy(verdicts):
    acc = collections.defaultdict(list)
    for tag, ok in verdicts:
        acc[tag].append(ok)
    return {t: float(np.mean(v)) for t, v in acc.items()}


# ---------------------------------------------------------------------------------------------- GenEval rules
def test_relative_position_follows_geneval():
    a = (0, 10, 10, 20)  # centre (5, 15), 10x10
    b = (20, 10, 30, 20)  # centre (25, 15)
    assert relative_position(a, b) == {"left of"}
    assert relative_position(b, a) == {"right of"}
    assert relative_position((10, 0, 20, 10), (10, 20, 20, 30)) == {"above"}
    # diagonal at 45 degrees: dx = dy = (10 - 2) / sqrt(200) = 0.566 > 0.5 -> both relations
    assert relative_position((0, 0, 10, 10), (10, 10, 20, 20)) == {"left of", "above"}
    # offset 3 < margin 0.1 * (10 + 10) * ... : shrunk to (1, 0) / 3 = 0.33 -> no relation
    assert relative_position((0, 0, 10, 10), (3, 0, 13, 10)) == set()
    # offset 5: (5 - 2) / 5 = 0.6 -> left of
    assert relative_position((0, 0, 10, 10), (5, 0, 15, 10)) == {"left of"}
    assert relative_position((0, 0, 10, 10), (0, 0, 10, 10)) == set()


def det(shape, color, box, score=0.9):
    return Detection(shape, color, box, 50, score)


def test_judge_rules():
    two = P.counting("star", 2)
    stars = [det("star", "red", (0, 0, 10, 10)), det("star", "blue", (20, 0, 30, 10))]
    assert judge_detections(stars, two)[:2] == (True, "correct")
    ok, reason, code = judge_detections(stars + [det("star", "red", (0, 20, 10, 30))], two)
    assert (ok, code) == (False, 5) and "expected star<3, found 3" in reason
    ok, reason, code = judge_detections(stars[:1], two)
    assert (ok, code) == (False, 1) and "expected star>=2, found 1" in reason
    # colour of the top-scoring detection counts (GenEval: top-`count` by confidence)
    blue = P.colors("star", "blue")
    assert not judge_detections(stars, blue)[0]
    assert judge_detections([stars[1], stars[0]], blue)[0]
    assert judge_detections(stars, blue)[2] == 2
    pos = P.position("circle", "left of", "cross")
    circle, cross = det("circle", "red", (0, 10, 10, 20)), det("cross", "green", (20, 10, 30, 20))
    assert judge_detections([circle, cross], pos)[0]
    assert judge_detections([circle, det("cross", "green", (0, 10, 10, 20)), det("circle", "red", (20, 10, 30, 20))][1:],
                            pos)[2] == 3
    assert judge_detections([circle], pos)[2] == 1
    # a missing target: the related object is found, but the clause it refers to failed
    ok, reason, code = judge_detections([circle], {"include": [{"class": "cross", "count": 1},
                                                               {"class": "circle", "count": 1,
                                                                "position": ["left of", 0]}]})
    assert code == 1 and "no target for circle to be left of" in reason
    assert set(REASONS) == {0, 1, 2, 3, 4, 5}
    with pytest.raises(ValueError, match="include"):
        judge_detections(stars, {"tag": "counting"})


def test_components_are_4_connected_in_raster_order():
    from metrics.shapebench import components

    mask = np.array([[0, 1, 1, 0, 0],
                     [0, 0, 1, 0, 1],
                     [1, 0, 0, 1, 0],  # (2, 3) touches (1, 4) only diagonally: its own component
                     [1, 1, 0, 0, 0]], dtype=bool)
    got = [p.tolist() for p in components(mask)]
    assert got == [[[0, 1], [0, 2], [1, 2]], [[1, 4]], [[2, 0], [3, 0], [3, 1]], [[2, 3]]]
    assert components(np.zeros((3, 3), bool)) == []
    assert [len(p) for p in components(np.ones((3, 4), bool))] == [12]


@pytest.mark.parametrize("sigma,radius", [(0.6, 2), (0.75, 3), (1.0, 3)])
def test_template_blur_is_a_gaussian_cut_at_three_sigma_with_zeros_outside(sigma, radius):
    from metrics.shapebench import _gaussian_blur

    delta = np.zeros((11, 11))
    delta[5, 5] = 1.0
    g = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    g /= g.sum()
    want = np.zeros((11, 11))
    want[5 - radius: 6 + radius, 5 - radius: 6 + radius] = np.outer(g, g)  # nothing beyond ceil(3 sigma)
    np.testing.assert_allclose(_gaussian_blur(delta, sigma), want, rtol=0, atol=1e-15)
    corner = np.zeros((5, 5))
    corner[0, 0] = 1.0  # what the kernel spreads outside the array is lost (zero padding), not reflected back
    assert _gaussian_blur(corner, sigma).sum() == pytest.approx(g[radius:].sum() ** 2)
    assert _gaussian_blur(delta, 0.0) is delta


def test_analyze_finds_exact_objects_on_a_clean_render():
    objs = [W.ShapeObject("star", "purple", 2, 3, 13), W.ShapeObject("cross", "white", 18, 17, 12)]
    dets = analyze(W.render(objs))
    assert sorted((d.shape, d.color) for d in dets) == [("cross", "white"), ("star", "purple")]
    by = {d.shape: d for d in dets}
    assert by["star"].box == (2, 3, 15, 16) and by["cross"].box == (18, 17, 30, 29)
    assert all(d.score > 0.9 for d in dets)
    # the same image as a float tensor (3, H, W) in [0, 1]
    t = torch.from_numpy(W.render(objs)).permute(2, 0, 1).float() / 255
    assert [(d.shape, d.color, d.box) for d in analyze(t)] == [(d.shape, d.color, d.box) for d in dets]
    assert analyze(np.full((32, 32, 3), 22, np.uint8)) == []
    # a one-pixel-wide streak (generated images have them): no object, and no crash on its narrow box
    streak = np.full((32, 32, 3), 22, np.uint8)
    streak[5:25, 10] = W.PALETTE["red"]
    assert analyze(streak) == []
    with pytest.raises(ValueError, match="image must be"):
        analyze(np.zeros((32, 32)))


def test_every_colour_is_decided_at_the_extremes_of_its_jitter():
    """The nine colours, each at the eight corners of its jitter cube, on the smallest ring and the biggest star,
    clean and degraded: the object's colour is always its palette colour."""
    rng = np.random.default_rng(0)
    for colour in W.COLORS:
        for corner in itertools.product((-W.JITTER, W.JITTER), repeat=3):
            objs = [W.ShapeObject("ring", colour, 2, 3, 9, corner), W.ShapeObject("star", colour, 14, 12, 17, corner)]
            img = W.render(objs)
            for image in (img, degrade(img, rng, MEASURED_TINT, MEASURED_NOISE, MEASURED_BLUR)):
                dets = analyze(image)
                found = sorted((d.shape, d.color) for d in dets)
                assert found == [("ring", colour), ("star", colour)], (colour, corner)


def test_confusable_shapes_are_told_apart():
    """The shapes the caption noise confuses, side by side at the smallest and a large size."""
    for shape in W.SHAPES:
        for other in W.SHAPE_CONFUSIONS[shape]:
            for size in (9, 14):
                objs = [W.ShapeObject(shape, "teal", 1, 1, size), W.ShapeObject(other, "teal", 17, 17, size)]
                assert sorted(d.shape for d in analyze(W.render(objs))) == sorted([shape, other]), (shape, other, size)


def test_near_misses_are_the_noise_errors():
    it = P.color_attr("red", "square", "teal", "ring")
    got = {json.dumps(m["include"], sort_keys=True) for m in near_misses({**it, "id": "x", "seed": 1})}
    want = [[{"class": "diamond", "count": 1, "color": "red"}, it["include"][1]],
            [{"class": "square", "count": 1, "color": "orange"}, it["include"][1]],
            [it["include"][0], {"class": "circle", "count": 1, "color": "teal"}],
            [it["include"][0], {"class": "ring", "count": 1, "color": "blue"}],
            [{"class": "square", "count": 1, "color": "teal"}, {"class": "ring", "count": 1, "color": "red"}]]
    for inc in want:
        assert json.dumps(inc, sort_keys=True) in got, inc
    assert len(got) == 7  # square: 1 shape + 2 colours; ring: 1 + 2; the binding swap
    three = near_misses({**P.counting("star", 3), "id": "x", "seed": 1})
    counts = sorted(sum(c["count"] for c in m["include"]) for m in three)
    assert counts == [2, 3, 4]  # one star turned into a cross, and 3 -/+ 1
    assert [c["class"] for c in three[0]["include"]] == ["cross", "star"] and three[0]["include"][1]["count"] == 2
    pos = near_misses({**P.position("circle", "left of", "square"), "id": "x", "seed": 1})
    assert {"class": "circle", "count": 1, "position": ["right of", 0]} in [m["include"][1] for m in pos]


# ---------------------------------------------------------------------------------------------- validation
@pytest.fixture(scope="module")
def full_set():
    return evaluation_set("full")


def test_oracle_accepts_ground_truth_of_every_item(full_set):
    verdicts = [(it["tag"], judge(render_metadata(it, it["seed"]), it)[0]) for it in full_set]
    acc = per_task_accuracy(verdicts)
    assert set(acc) == set(P.TASKS)
    for tag, a in acc.items():
        assert a >= 0.99, (tag, a)


def test_oracle_rejects_renders_of_another_prompt(full_set):
    verdicts = [(it["tag"], not judge(render_metadata(other_prompt(it), it["seed"]), it)[0]) for it in full_set]
    for tag, a in per_task_accuracy(verdicts).items():
        assert a >= 0.98, (tag, a)


def test_other_prompt_asks_for_a_different_scene():
    pos = P.position("circle", "left of", "square")
    assert canonical_scene(pos) == canonical_scene(P.position("square", "right of", "circle"))
    assert canonical_scene(pos) != canonical_scene(P.position("square", "left of", "circle"))
    for it in evaluation_set("full")[::5]:
        assert canonical_scene(other_prompt(it)) != canonical_scene(it)


def test_oracle_rejects_near_misses(full_set):
    """The errors the caption noise teaches (a neighbour colour, a confusable shape, a count off by one, a mirrored
    relation, swapped colours): every near miss of every 4th item."""
    verdicts = [(it["tag"], not judge(render_metadata(m, it["seed"]), it)[0])
                for it in full_set[::4] for m in near_misses(it)]
    for tag, a in per_task_accuracy(verdicts).items():
        assert a >= 0.98, (tag, a)


def test_oracle_under_measured_degradation():
    table = validation_table(judge, MEASURED_TINT, MEASURED_NOISE, MEASURED_BLUR, stride=3)
    for tag, row in table.items():
        assert row["accept"] >= 0.98, (tag, row)
        assert row["reject"] >= 0.98, (tag, row)
        assert row["near_miss"] >= 0.98, (tag, row)


# ---------------------------------------------------------------------------------------------- the metric
def test_metric_columns_and_per_task_accuracy():
    items = evaluation_set("smoke")
    good = torch.stack([torch.from_numpy(render_metadata(it, it["seed"])).permute(2, 0, 1).float() / 255
                        for it in items])
    bad = torch.full_like(good, 22 / 255)  # empty background: every item fails with "missing object"
    m = ShapeBenchScore()
    cols = m.score(good, [it["prompt"] for it in items], items)
    assert torch.equal(cols["shapebench"], torch.ones(8))
    assert torch.equal(cols["shapebench_reason"], torch.zeros(8, dtype=torch.int64))
    m.update(cols, items)
    cols = m.score(bad[:2], [it["prompt"] for it in items[:2]], items[:2])  # single_object and two_object wrong
    assert torch.equal(cols["shapebench"], torch.zeros(2))
    assert torch.equal(cols["shapebench_reason"], torch.ones(2, dtype=torch.int64))
    m.update(cols, items[:2])
    out = m.compute()
    # single_object: 2 right (smoke has two) + 1 wrong; two_object: 1 right + 1 wrong; others all right
    assert out["shapebench/single_object"] == pytest.approx(2 / 3)
    assert out["shapebench/two_object"] == pytest.approx(0.5)
    assert out["shapebench/position"] == 1.0
    assert out["shapebench"] == pytest.approx((2 / 3 + 0.5 + 4) / 6)
    assert ShapeBenchScore.name == "shapebench" and ShapeBenchScore.tags == P.TASKS


def test_metric_is_registered_and_rejects_bad_media():
    from metrics import build_metric

    m = build_metric("shapebench")
    assert isinstance(m, ShapeBenchScore)
    item = evaluation_set("smoke")[0]
    with pytest.raises(ValueError, match="include"):
        m.score(torch.zeros(1, 3, 32, 32), ["a circle"], [{"tag": "single_object"}])
    with pytest.raises((ValueError, TypeError)):
        m.score(torch.zeros(1, 32, 32, 3), [item["prompt"]], [item])
