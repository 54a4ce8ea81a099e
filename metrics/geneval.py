"""GenEval (djghosh13/geneval, ``evaluation/evaluate_images.py``): object-focused prompt checks on detections.

The rules are the reference's, reimplemented on plain tensors:

- detections per class are sorted by confidence and kept when ``score > 0.3`` (``> 0.9`` for the ``counting`` tag),
  at most 16 per class, no NMS (``max_overlap = 1.0``);
- every ``include`` clause (AND) needs at least ``count`` detections of its class; ``color``: each of the top-
  ``count`` detections, masked onto a grey ``#999`` background and cropped to its box, is classified zero-shot by CLIP
  ViT-L/14 over 10 colours x 3 templates, and all must have the target colour; ``position``: every one of them must be
  in the relation to every object of the target clause, from box centres with the offset shrunk by 0.1 x (sum of the
  two box sizes) per axis (``left of``: dx < -0.5 of the unit offset, etc., image coordinates);
- any ``exclude`` clause (OR) fails the image when there are ``count`` or more detections of its class;
- the task accuracy is the mean over images, the overall score the unweighted mean of the six task accuracies.

This is a PORT, not the reference pipeline: the detector is transformers' Mask2Former Swin-S COCO instance model
(``facebook/mask2former-swin-small-coco-instance``, detectron2-trained weights) instead of the mmdet 2.x checkpoint,
with mmdet's test-time resize (short side 800, long side <= 1333), normalisation, size-32 padding and Mask2Former
instance post-processing (top 100 of query x class scores, score = class probability x mean mask probability, boxes
from masks). Expect small shifts against published GenEval numbers; the conventions say so in every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from .base import SampleMetric
from .clip_backbone import DEFAULT_CLIP, ClipBackbone, load_clip
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, to_uint8_levels
from .weights import cached, freeze, from_pretrained_strictly, resolve_folder

GENEVAL_DETECTOR = "facebook/mask2former-swin-small-coco-instance"
GENEVAL_TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
COLOR_TEMPLATES = ("a photo of a {c} {obj}", "a photo of a {c}-colored {obj}", "a photo of a {c} object")
# the 80 COCO "thing" classes in label order, named as GenEval's object_names.txt names them
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "computer mouse", "tv remote",
    "computer keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock",
    "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)
THRESHOLD = 0.3
COUNTING_THRESHOLD = 0.9
MAX_OBJECTS = 16
NMS_THRESHOLD = 1.0
POSITION_THRESHOLD = 0.1
BACKGROUND_GREY = 0x99 / 255  # "#999"


@dataclass
class Detection:
    """One detected instance: COCO label index, confidence, box ``(x0, y0, x1, y1)`` in pixels (x1/y1 exclusive, as
    mmdet's ``mask2bbox``), and its binary mask ``(H, W)`` or None."""

    label: int
    score: float
    box: tuple[float, float, float, float]
    mask: torch.Tensor | None = None


# ---------------------------------------------------------------------------------------------- rules
def box_iou(box_a: Sequence[float], box_b: Sequence[float]) -> float:
    """IoU with the reference's inclusive-pixel convention (``x1 - x0 + 1``)."""
    def area(b):
        return max(b[2] - b[0] + 1, 0) * max(b[3] - b[1] + 1, 0)

    inter = area([max(box_a[0], box_b[0]), max(box_a[1], box_b[1]), min(box_a[2], box_b[2]), min(box_a[3], box_b[3])])
    union = area(box_a) + area(box_b) - inter
    return inter / union if union else 0.0


def select_objects(detections: Sequence[Detection], tag: str, classnames: Sequence[str] = COCO_CLASSES, *,
                   threshold: float = THRESHOLD, counting_threshold: float = COUNTING_THRESHOLD,
                   max_objects: int = MAX_OBJECTS, nms_threshold: float = NMS_THRESHOLD) -> dict[str, list[Detection]]:
    """Per class name, the kept detections in descending confidence (classes with none are absent)."""
    cutoff = counting_threshold if tag == "counting" else threshold
    objects: dict[str, list[Detection]] = {}
    for label, classname in enumerate(classnames):
        ordered = sorted((d for d in detections if d.label == label), key=lambda d: d.score, reverse=True)
        ordered = [d for d in ordered if d.score > cutoff][:max_objects]
        kept: list[Detection] = []
        while ordered:
            best = ordered.pop(0)
            kept.append(best)
            if nms_threshold < 1:
                ordered = [d for d in ordered if box_iou(best.box, d.box) < nms_threshold]
        if kept:
            objects[classname] = kept
    return objects


def relative_position(box_a: Sequence[float], box_b: Sequence[float], margin: float = POSITION_THRESHOLD) -> set[str]:
    """Relations of A to B ("left of", "right of", "above", "below"; image coordinates, y down)."""
    ax0, ay0, ax1, ay1 = (float(v) for v in box_a[:4])
    bx0, by0, bx1, by1 = (float(v) for v in box_b[:4])
    offset = ((ax0 + ax1) / 2 - (bx0 + bx1) / 2, (ay0 + ay1) / 2 - (by0 + by1) / 2)
    sizes = (abs(ax1 - ax0) + abs(bx1 - bx0), abs(ay1 - ay0) + abs(by1 - by0))
    revised = [max(abs(o) - margin * s, 0.0) * (1.0 if o > 0 else -1.0 if o < 0 else 0.0)
               for o, s in zip(offset, sizes)]
    if all(abs(r) < 1e-3 for r in revised):
        return set()
    norm = (offset[0] ** 2 + offset[1] ** 2) ** 0.5
    dx, dy = revised[0] / norm, revised[1] / norm
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


def evaluate_geneval(objects: dict[str, list[Detection]], metadata: dict[str, Any],
                     classify_colors: Callable[[list[Detection], str], list[str]],
                     margin: float = POSITION_THRESHOLD) -> tuple[bool, str]:
    """``(correct, reason)`` for one image; ``classify_colors(objects, classname)`` names each object's colour."""
    correct = True
    reasons: list[str] = []
    matched_groups: list[list[Detection] | None] = []
    for req in metadata.get("include", []):
        classname, count = req["class"], req["count"]
        found = objects.get(classname, [])[:count]
        matched = True
        if len(found) < count:
            correct = matched = False
            reasons.append(f"expected {classname}>={count}, found {len(found)}")
        else:
            if "color" in req:
                colors = classify_colors(found, classname)
                if colors.count(req["color"]) < count:
                    correct = matched = False
                    reasons.append(f"expected {req['color']} {classname}>={count}, found {colors}")
            if "position" in req and matched:
                relation, target = req["position"]
                if matched_groups[target] is None:
                    correct = matched = False
                    reasons.append(f"no target for {classname} to be {relation}")
                else:
                    for obj in found:
                        for other in matched_groups[target]:
                            if relation not in relative_position(obj.box, other.box, margin):
                                correct = matched = False
                                reasons.append(f"expected {classname} {relation} target")
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        if len(objects.get(req["class"], [])) >= req["count"]:
            correct = False
            reasons.append(f"expected {req['class']}<{req['count']}, found {len(objects[req['class']])}")
    return correct, "\n".join(reasons)


# ---------------------------------------------------------------------------------------------- colour
def object_crops(image: torch.Tensor, objects: Sequence[Detection],
                 background: float = BACKGROUND_GREY) -> list[torch.Tensor]:
    """Each object on a flat grey background outside its mask, cropped to its (rounded) box; ``image`` (3, H, W)."""
    crops = []
    for obj in objects:
        x = image if obj.mask is None else torch.where(obj.mask.to(image.device)[None], image,
                                                        torch.full_like(image, background))
        x0, y0, x1, y1 = (int(round(float(v))) for v in obj.box[:4])
        crops.append(x[:, y0:y1, x0:x1])
    return crops


def color_classifier(backbone: ClipBackbone, classname: str) -> torch.Tensor:
    """``(D, 10)`` zero-shot weights: per colour the mean of the normalised template embeddings, renormalised."""
    texts = [t.format(c=c, obj=classname) for c in COLORS for t in COLOR_TEMPLATES]
    embeds = F.normalize(backbone.embed_fixed_texts(texts), dim=-1).view(len(COLORS), len(COLOR_TEMPLATES), -1)
    return F.normalize(embeds.mean(1), dim=-1).T


def classify_colors(backbone: ClipBackbone, image: torch.Tensor, objects: Sequence[Detection],
                    classname: str) -> list[str]:
    pixels = torch.cat([backbone.preprocess(c[None], rounding="torchvision") for c in object_crops(image, objects)])
    image_embeds = F.normalize(backbone.embed_pixels(pixels), dim=-1)
    return [COLORS[i] for i in (image_embeds @ color_classifier(backbone, classname)).argmax(-1).tolist()]


# ---------------------------------------------------------------------------------------------- detector
def mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes ``(N, 4)`` of binary masks ``(N, H, W)``: ``(x_min, y_min, x_max + 1, y_max + 1)``; zeros for an
    empty mask."""
    height, width = masks.shape[-2:]
    cols, rows = masks.any(dim=1).float(), masks.any(dim=2).float()
    boxes = torch.stack([cols.argmax(1), rows.argmax(1), width - cols.flip(1).argmax(1),
                         height - rows.flip(1).argmax(1)], dim=1).float()
    return boxes * cols.any(1, keepdim=True)


def instance_postprocess(class_logits: torch.Tensor, mask_logits: torch.Tensor, max_per_image: int = 100
                         ) -> list[Detection]:
    """Mask2Former instance inference for one image: ``class_logits (Q, C + 1)`` (last = no object), ``mask_logits
    (Q, H, W)`` at the image's size."""
    num_queries, num_classes = class_logits.shape[0], class_logits.shape[1] - 1
    scores = class_logits.float().softmax(-1)[:, :-1]
    top_scores, top = scores.flatten().topk(min(max_per_image, scores.numel()), sorted=False)
    labels, queries = top % num_classes, top // num_classes
    masks = mask_logits[queries].float()
    binary = masks > 0
    mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    det_scores = top_scores * mask_scores
    boxes = mask_to_box(binary).tolist()
    return [Detection(label, score, tuple(box), mask)
            for label, score, box, mask in zip(labels.tolist(), det_scores.tolist(), boxes, binary)]


class Mask2FormerDetector:
    """transformers Mask2Former with mmdet's test-time pipeline: 8-bit image, resize keeping the aspect ratio so the
    short side is ``short`` and the long side at most ``long`` (bilinear, rounded to uint8 as cv2 does),
    ImageNet mean/std on 0-255, zero padding to a multiple of ``size_divisor``; masks are upsampled to the padded
    size, cropped and resized back to the image size before post-processing."""

    def __init__(self, model, short: int = 800, long: int = 1333, size_divisor: int = 32, max_per_image: int = 100):
        self.model, self.short, self.long = model, short, long
        self.size_divisor, self.max_per_image = size_divisor, max_per_image

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        scale = min(self.long / max(height, width), self.short / min(height, width))
        return int(height * scale + 0.5), int(width * scale + 0.5)

    def __call__(self, images: torch.Tensor) -> list[list[Detection]]:
        height, width = images.shape[-2:]
        new_h, new_w = self.resized_size(height, width)
        x = to_uint8_levels(images).float() * 255
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False).round().clamp(0, 255)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1) * 255
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1) * 255
        x = (x - mean) / std
        pad_h, pad_w = -new_h % self.size_divisor, -new_w % self.size_divisor
        x = F.pad(x, (0, pad_w, 0, pad_h))
        dtype = next(self.model.parameters()).dtype
        out = self.model(pixel_values=x.to(dtype))
        results = []
        for class_logits, mask_logits in zip(out.class_queries_logits, out.masks_queries_logits):
            masks = F.interpolate(mask_logits[None].float(), size=x.shape[-2:], mode="bilinear", align_corners=False)
            masks = F.interpolate(masks[:, :, :new_h, :new_w], size=(height, width), mode="bilinear",
                                  align_corners=False)[0]
            results.append(instance_postprocess(class_logits, masks, self.max_per_image))
        return results


def _build_detector(folder, device: torch.device, dtype: torch.dtype, short: int, long: int) -> Mask2FormerDetector:
    from transformers import Mask2FormerForUniversalSegmentation

    model = from_pretrained_strictly(Mask2FormerForUniversalSegmentation, folder, metric="geneval", dtype=dtype)
    if model.config.num_labels != len(COCO_CLASSES):
        raise ValueError(f"geneval: detector has {model.config.num_labels} classes, expected the "
                         f"{len(COCO_CLASSES)} COCO instance classes")
    return Mask2FormerDetector(freeze(model, device, dtype), short=short, long=long)


class GenEval(SampleMetric):
    """``detector``: a transformers Mask2Former COCO instance model (hub id or folder); ``clip``: the colour
    classifier's CLIP ViT-L/14; ``detector_size``: the test-time (short, long) resize of mmdet's config.
    ``metadata[i]`` is the GenEval prompt record (``tag``, ``include``, ``exclude``)."""

    name = "geneval"
    tags = GENEVAL_TAGS

    def __init__(self, detector: str = GENEVAL_DETECTOR, clip: str = DEFAULT_CLIP,
                 detector_size: tuple[int, int] = (800, 1333), **kwargs: Any):
        super().__init__(**kwargs)
        self.detector, self.clip, self.detector_size = detector, clip, tuple(detector_size)

    def _load(self, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        folder = resolve_folder(self.detector, metric=self.name, option="detector")
        detector = cached(("geneval_detector", str(folder.resolve()), self.detector_size, str(device), dtype),
                          lambda: _build_detector(folder, device, dtype, *self.detector_size))
        return {"detector": detector, "clip": load_clip(self.clip, device, dtype, metric=self.name, option="clip")}

    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        for meta in metadata:
            if meta.get("tag") not in GENEVAL_TAGS or "include" not in meta:
                raise ValueError(f"geneval: each metadata needs a GenEval tag {GENEVAL_TAGS} and 'include' clauses, "
                                 f"got {dict(meta)}")
        images = to_uint8_levels(media.float())  # the reference reads 8-bit PNGs; colour crops come from them too
        backbone = self.models["clip"]
        correct = []
        for image, detections, meta in zip(images, self.models["detector"](images), metadata):
            objects = select_objects(detections, meta["tag"])
            ok, _ = evaluate_geneval(objects, meta, lambda objs, cls: classify_colors(backbone, image, objs, cls))
            correct.append(float(ok))
        return {self.name: torch.tensor(correct, dtype=torch.float32)}

    def conventions(self) -> dict[str, Any]:
        return {"geneval_impl": "PORT: transformers Mask2Former (detectron2 weights), not the mmdet checkpoint; "
                                "not identical to published GenEval",
                "geneval_detector": self.detector, "geneval_detector_size": list(self.detector_size),
                "geneval_color_clip": self.clip,
                "geneval_thresholds": f"score>{THRESHOLD} (counting>{COUNTING_THRESHOLD}), max {MAX_OBJECTS}/class, "
                                      f"no NMS, position margin {POSITION_THRESHOLD}",
                "geneval_overall": "unweighted mean of task accuracies", "geneval_dtype": self.precision()}
