"""GenEval: the rules on synthetic detections (every tag, exclude, thresholds, position margins), Mask2Former
post-processing on synthetic logits, colour crops, and the metric end to end on tiny models from local folders."""

from __future__ import annotations

import math

import pytest
import torch

from metrics import build_metric
from metrics.geneval import (COCO_CLASSES, COLORS, Detection, Mask2FormerDetector, box_iou, classify_colors,
                             color_classifier, evaluate_geneval, instance_postprocess, mask_to_box, object_crops,
                             relative_position, select_objects)
from tiny_scorers import build_clip, build_mask2former

LABEL = {name: i for i, name in enumerate(COCO_CLASSES)}


def det(name: str, score: float = 0.95, box=(0, 0, 10, 10), color: str | None = None) -> Detection:
    d = Detection(LABEL[name], score, tuple(float(v) for v in box))
    d.color = color  # read by the fake colour classifier below
    return d


def fake_colors(objects, classname):
    return [o.color for o in objects]


def run(detections, meta) -> bool:
    return evaluate_geneval(select_objects(detections, meta["tag"]), meta, fake_colors)[0]


# ---------------------------------------------------------------------------------------------- selection
def test_select_objects_thresholds_order_and_cap():
    dets = [det("dog", 0.3), det("dog", 0.31), det("dog", 0.8), det("cat", 0.2)]
    objects = select_objects(dets, "single_object")
    assert [d.score for d in objects["dog"]] == [0.8, 0.31]  # strictly above 0.3, by confidence
    assert "cat" not in objects
    assert select_objects(dets, "counting") == {}  # nothing above 0.9
    many = [det("cup", 0.5 + i / 100) for i in range(20)]
    kept = select_objects(many, "two_object")["cup"]
    assert len(kept) == 16 and kept[0].score == pytest.approx(0.69) and kept[-1].score == pytest.approx(0.54)


def test_no_nms_by_default_and_iou_convention():
    a, b = det("dog", 0.9, (0, 0, 9, 9)), det("dog", 0.8, (0, 0, 9, 4))
    assert box_iou(a.box, b.box) == pytest.approx(50 / 100)  # inclusive pixels: 10x10 and 10x5
    assert len(select_objects([a, b], "single_object")["dog"]) == 2
    assert len(select_objects([a, b], "single_object", nms_threshold=0.5)["dog"]) == 1
    assert len(select_objects([a, b], "single_object", nms_threshold=0.51)["dog"]) == 2


# ---------------------------------------------------------------------------------------------- tags
def test_single_and_two_object():
    single = {"tag": "single_object", "include": [{"class": "bench", "count": 1}]}
    assert run([det("bench", 0.5)], single)
    assert not run([det("bench", 0.29)], single)
    assert not run([det("cow", 0.9)], single)
    two = {"tag": "two_object", "include": [{"class": "bench", "count": 1}, {"class": "cow", "count": 1}]}
    assert run([det("bench"), det("cow")], two)
    assert not run([det("bench"), det("bench")], two)


def test_counting_needs_exactly_n_above_the_counting_threshold():
    meta = {"tag": "counting", "include": [{"class": "clock", "count": 2}], "exclude": [{"class": "clock", "count": 3}]}
    assert run([det("clock", 0.95), det("clock", 0.92)], meta)
    assert not run([det("clock", 0.95), det("clock", 0.92), det("clock", 0.91)], meta)  # exclude: 3 >= 3
    assert run([det("clock", 0.95), det("clock", 0.92), det("clock", 0.85)], meta)  # 0.85 is not counted
    assert not run([det("clock", 0.95), det("clock", 0.9)], meta)  # 0.9 is not > 0.9


def test_colors_use_the_top_count_objects():
    meta = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}]}
    assert run([det("car", 0.9, color="red"), det("car", 0.5, color="blue")], meta)
    assert not run([det("car", 0.9, color="blue"), det("car", 0.5, color="red")], meta)
    two = {"tag": "colors", "include": [{"class": "car", "count": 2, "color": "red"}]}
    assert not run([det("car", 0.9, color="red"), det("car", 0.5, color="blue")], two)
    assert run([det("car", 0.9, color="red"), det("car", 0.5, color="red"), det("car", 0.4, color="blue")], two)


def test_color_attr():
    meta = {"tag": "color_attr", "include": [{"class": "wine glass", "count": 1, "color": "purple"},
                                             {"class": "apple", "count": 1, "color": "black"}]}
    assert run([det("wine glass", color="purple"), det("apple", color="black")], meta)
    assert not run([det("wine glass", color="purple"), det("apple", color="green")], meta)


def test_position_with_target_group_and_margin():
    meta = {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
                                           {"class": "dog", "count": 1, "position": ["right of", 0]}]}
    bear = det("teddy bear", box=(0, 0, 10, 10))
    assert run([bear, det("dog", box=(12, 0, 22, 10))], meta)
    assert not run([bear, det("dog", box=(-12, 0, -2, 10))], meta)  # left of
    assert not run([bear, det("dog", box=(2.5, 0, 12.5, 10))], meta)  # offset 2.5 shrunk by the margin 2 -> 0.2
    assert not run([det("dog", box=(12, 0, 22, 10))], meta)  # no target: the bear clause did not match
    # every dog must be right of every bear
    meta2 = {"tag": "position", "include": [{"class": "teddy bear", "count": 2},
                                            {"class": "dog", "count": 1, "position": ["right of", 0]}]}
    far_bear = det("teddy bear", 0.5, box=(30, 0, 40, 10))
    assert not run([bear, far_bear, det("dog", box=(12, 0, 22, 10))], meta2)


def test_relative_position_by_hand():
    b = (0, 0, 10, 10)  # centre (5, 5); sizes summed with an equal box: 20 per axis, margin 0.1 -> 2
    assert relative_position((12, 0, 22, 10), b) == {"right of"}  # offset (12, 0): dx = 10 / 12
    assert relative_position((0, 12, 10, 22), b) == {"below"}  # image y grows downwards
    assert relative_position((0, -12, 10, -2), b) == {"above"}
    assert relative_position((10, 10, 20, 20), b) == {"right of", "below"}  # (8, 8) / 14.14 = 0.566 each
    assert relative_position((10, 3, 20, 13), b) == {"right of"}  # (8, 1) / 10.44: dy = 0.096
    assert relative_position((2.5, 0, 12.5, 10), b) == set()  # (0.5, 0) / 2.5 = 0.2
    assert relative_position((1.9, 0.5, 11.9, 10.5), b) == set()  # both offsets inside the margin
    # the margin grows with the boxes: a 3-pixel offset is "right of" for small boxes only
    assert relative_position((3, 0, 5, 2), (0, 0, 2, 2)) == {"right of"}  # sizes 4 -> margin 0.4: 2.6 / 3
    assert relative_position((3, 0, 33, 30), (0, 0, 30, 30)) == set()  # sizes 60 -> margin 6 > 3


def test_exclude_fails_any_matching_clause():
    meta = {"tag": "single_object", "include": [{"class": "cat", "count": 1}],
            "exclude": [{"class": "dog", "count": 1}, {"class": "cow", "count": 2}]}
    assert run([det("cat"), det("cow")], meta)
    assert not run([det("cat"), det("dog", 0.4)], meta)
    assert not run([det("cat"), det("cow"), det("cow", 0.35)], meta)


# ---------------------------------------------------------------------------------------------- detector pieces
def test_mask_to_box_is_tight_with_exclusive_max():
    masks = torch.zeros(2, 6, 8, dtype=torch.bool)
    masks[0, 1:4, 2:7] = True
    assert mask_to_box(masks).tolist() == [[2, 1, 7, 4], [0, 0, 0, 0]]


def test_instance_postprocess_scores_by_hand():
    class_logits = torch.tensor([[math.log(6), math.log(3), 0.0, -100.0],  # probs 0.6, 0.3, 0.1 and ~0 for empty
                                 [0.0, 0.0, 0.0, math.log(7)]])          # 0.1, 0.1, 0.1 (0.7 = no object)
    mask_logits = torch.full((2, 4, 4), -5.0)
    mask_logits[0, 1:3, 0:2] = math.log(3)  # sigmoid 0.75 on a 2x2 region
    dets = instance_postprocess(class_logits, mask_logits, max_per_image=3)
    best = max(dets, key=lambda d: d.score)
    assert best.label == 0 and best.box == (0.0, 1.0, 2.0, 3.0)
    assert best.score == pytest.approx(0.6 * 0.75)
    assert len(dets) == 3
    second = sorted(d.score for d in dets)[-2]
    assert second == pytest.approx(0.3 * 0.75)


def test_detector_resize_follows_mmdet_keep_ratio():
    detector = Mask2FormerDetector(model=None)
    assert detector.resized_size(512, 512) == (800, 800)
    assert detector.resized_size(480, 640) == (800, 1067)
    assert detector.resized_size(100, 1000) == (133, 1333)


def test_object_crops_mask_onto_grey_and_crop_to_box():
    image = torch.zeros(3, 6, 8)
    image[0] = 1.0  # red everywhere
    mask = torch.zeros(6, 8, dtype=torch.bool)
    mask[2:4, 3:5] = True
    crop = object_crops(image, [Detection(0, 1.0, (2.0, 1.0, 6.0, 5.0), mask)])[0]
    assert crop.shape == (3, 4, 4)
    assert torch.equal(crop[:, 1:3, 1:3], image[:, 2:4, 3:5])
    assert crop[:, 0, 0].tolist() == pytest.approx([0.6] * 3)  # #999 outside the mask


# ---------------------------------------------------------------------------------------------- with models
@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {"clip": build_clip(tmp_path_factory.mktemp("clip")),
            "detector": build_mask2former(tmp_path_factory.mktemp("m2f"))}


def test_color_classifier_is_the_template_mean_of_normalised_text_embeddings(folders):
    from transformers import CLIPModel

    metric = build_metric("geneval", detector=folders["detector"], clip=folders["clip"])
    metric.load("cpu")
    backbone = metric.models["clip"]
    weights = color_classifier(backbone, "car")
    assert weights.shape == (16, 10)
    reference = CLIPModel.from_pretrained(folders["clip"]).eval()
    texts = ["a photo of a blue car", "a photo of a blue-colored car", "a photo of a blue object"]
    tokens = backbone.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        embeds = reference(**tokens, pixel_values=torch.zeros(1, 3, 32, 32)).text_embeds  # normalised
    expected = embeds.mean(0) / embeds.mean(0).norm()
    torch.testing.assert_close(weights[:, COLORS.index("blue")], expected, atol=1e-5, rtol=1e-5)
    colors = classify_colors(backbone, torch.rand(3, 40, 40), [Detection(0, 1.0, (0, 0, 20, 30), None),
                                                               Detection(0, 1.0, (5, 5, 40, 40), None)], "car")
    assert len(colors) == 2 and set(colors) <= set(COLORS)


def test_geneval_metric_aggregates_per_tag_and_overall(folders):
    metric = build_metric("geneval", detector=folders["detector"], clip=folders["clip"])
    metric.load("cpu")
    scripted = [[det("bench")], [det("clock", 0.95)], [det("teddy bear", box=(0, 0, 4, 4)),
                                                      det("dog", box=(6, 0, 10, 4))]]
    metric.models["detector"] = lambda images: scripted[:len(images)]
    metas = [{"tag": "single_object", "include": [{"class": "bench", "count": 1}]},
             {"tag": "counting", "include": [{"class": "clock", "count": 2}],
              "exclude": [{"class": "clock", "count": 3}]},
             {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
                                             {"class": "dog", "count": 1, "position": ["right of", 0]}]}]
    columns = metric.score(torch.rand(3, 3, 16, 16), ["a", "b", "c"], metas)
    assert columns["geneval"].tolist() == [1.0, 0.0, 1.0]
    metric.update(columns, metas)
    out = metric.compute()
    assert out["geneval/single_object"] == 1.0 and out["geneval/counting"] == 0.0 and out["geneval/position"] == 1.0
    assert out["geneval"] == pytest.approx(2 / 3)
    assert "geneval/colors" not in out
    with pytest.raises(ValueError, match="GenEval tag"):
        metric.score(torch.rand(1, 3, 16, 16), ["a"], [{"tag": "nope", "include": []}])


def test_geneval_end_to_end_on_tiny_models(folders):
    metric = build_metric("geneval", detector=folders["detector"], clip=folders["clip"], detector_size=(64, 96))
    metas = [{"tag": "single_object", "include": [{"class": "bench", "count": 1}]},
             {"tag": "color_attr", "include": [{"class": "car", "count": 1, "color": "red"}]}]
    values = metric.score(torch.rand(2, 3, 48, 40), ["a photo of a bench", "a red car"], metas)["geneval"]
    assert values.shape == (2,) and set(values.tolist()) <= {0.0, 1.0}
    detections = metric.models["detector"](torch.rand(1, 3, 48, 40))[0]
    assert len(detections) == 100  # the top 100 of 10 queries x 80 classes (mmdet's max_per_image)
    assert all(d.mask.shape == (48, 40) and 0 <= d.score <= 1 for d in detections)
    assert all(0 <= d.box[0] <= d.box[2] <= 40 and 0 <= d.box[1] <= d.box[3] <= 48 for d in detections)
    assert "PORT" in metric.conventions()["geneval_impl"]
