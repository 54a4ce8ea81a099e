"""Image rewards on tiny random-weight models loaded from local files: HPS v2, PickScore, ImageReward, aesthetic,
CLIP score. Each score is checked against values computed independently (by hand, or through the model library's
own forward) rather than against the metric's own output."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from metrics import WeightsNotFoundError, build_metric
from metrics.weights import WeightsMismatchError
from metrics.aesthetic import aesthetic_from_embeddings
from metrics.heads import RewardMLP
from metrics.image_reward import (IR_MEAN, IR_STD, ImageRewardModel, convert_image_reward_state_dict,
                                  image_reward_from_raw)
from metrics.pickscore import pickscore_from_embeddings
from metrics.preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, center_crop, resize_longest_and_pad
from tiny_scorers import (FULL_IR, TINY_OPEN_CLIP, build_clip, build_clip_processor, build_hps_checkpoint,
                          build_image_reward, image_reward_reference_shapes, med_config)

MEAN = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)


def constant_images(values: list[float], height: int, width: int) -> torch.Tensor:
    """Images of one flat colour each (flat colours survive any resize unchanged)."""
    return torch.tensor(values).view(-1, 1, 1, 1).expand(-1, 3, height, width).contiguous()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return build_clip(tmp_path_factory.mktemp("clip"))


# ---------------------------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize("height, width, rows", [
    (24, 64, (10, 22)),  # scale 1/2: 12 rows, pad 20 -> 10 above, 10 below
    (20, 64, (11, 21)),  # 10 rows, pad 22 -> 11 / 11
    (6, 64, (14, 17)),   # 3 rows, pad 29 -> 14 above, 15 below
    (5, 64, (15, 17)),   # 2.5 rounds half to even: 2 rows, pad 30 -> 15 / 15
    (7, 64, (14, 18)),   # 3.5 rounds to 4 rows, pad 28 -> 14 / 14
])
def test_hps_resize_longest_and_pad(height, width, rows):
    out = resize_longest_and_pad(constant_images([0.4], height, width), 32)
    assert out.shape == (1, 3, 32, 32)
    expected = torch.zeros(1, 3, 32, 32)
    expected[..., rows[0]:rows[1], :] = 0.4
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_hps_pad_goes_left_right_for_tall_images():
    out = resize_longest_and_pad(constant_images([1.0], 64, 24), 32)
    assert (out[..., :, :10] == 0).all() and (out[..., :, 22:] == 0).all()
    assert torch.allclose(out[..., :, 10:22], torch.ones(1))


def test_center_crop_rounding_conventions():
    x = torch.arange(7.0).view(1, 1, 1, 7).expand(1, 1, 7, 7)
    assert center_crop(x, (4, 4), "torchvision")[0, 0, 0].tolist() == [2, 3, 4, 5]  # round(1.5) = 2
    assert center_crop(x, (4, 4), "floor")[0, 0, 0].tolist() == [1, 2, 3, 4]        # 3 // 2 = 1
    y = torch.arange(6.0).view(1, 1, 1, 6).expand(1, 1, 6, 6)
    assert center_crop(y, (5, 5), "torchvision")[0, 0, 0].tolist() == [0, 1, 2, 3, 4]  # round(0.5) = 0


# ---------------------------------------------------------------------------------------------- HPS v2
def test_hps_scores_the_cosine_of_the_checkpoint_model(tmp_path):
    import open_clip

    path = build_hps_checkpoint(tmp_path)
    metric = build_metric("hpsv2", checkpoint=str(tmp_path), architecture=TINY_OPEN_CLIP, version="v2.1")
    images = constant_images([100 / 255, 30 / 255], 24, 64)
    prompts = ["a red cat", "a dog on a table"]
    columns = metric.score(images, prompts)
    metric.update(columns)
    got = columns["hpsv2"]

    # independently: open_clip's own checkpoint loader, pixels written by hand (12 rows of colour, 10 black above)
    reference = open_clip.create_model(TINY_OPEN_CLIP, pretrained=str(path)).eval()
    pixels = torch.zeros(2, 3, 32, 32)
    pixels[0, :, 10:22] = 100 / 255
    pixels[1, :, 10:22] = 30 / 255
    with torch.no_grad():
        image_features = reference.encode_image((pixels - MEAN) / STD, normalize=True)
        text_features = reference.encode_text(open_clip.get_tokenizer(TINY_OPEN_CLIP)(prompts), normalize=True)
    expected = 100 * (image_features * text_features).sum(-1)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert got.abs().max() <= 100
    assert metric.compute()["hpsv2"] == pytest.approx(expected.double().mean().item(), abs=1e-4)
    conventions = metric.conventions()
    assert conventions["hpsv2_version"] == "v2.1" and conventions["hpsv2_scale"] == 100.0


def test_hps_version_selects_the_file(tmp_path):
    build_hps_checkpoint(tmp_path)  # only the v2.1 file
    metric = build_metric("hpsv2", checkpoint=str(tmp_path), architecture=TINY_OPEN_CLIP, version="v2.0")
    with pytest.raises(WeightsNotFoundError, match="'HPS_v2_compressed.pt'"):
        metric.load("cpu")
    with pytest.raises(ValueError, match="version must be one of"):
        build_metric("hpsv2", version="v3")


# ---------------------------------------------------------------------------------------------- PickScore
def test_pickscore_formula_by_hand():
    got = pickscore_from_embeddings(torch.tensor([[2.0, 0.0], [0.0, 3.0]]), torch.tensor([[1.0, 1.0], [0.0, 5.0]]),
                                    torch.tensor(50.0))
    torch.testing.assert_close(got, torch.tensor([50 / math.sqrt(2), 50.0]))


def test_pickscore_is_logit_scale_times_cosine(tmp_path):
    from transformers import CLIPModel

    model_dir = build_clip(tmp_path / "pickscore", logit_scale=50.0, with_processor=False)
    processor_dir = build_clip_processor(tmp_path / "processor")
    metric = build_metric("pickscore", model=model_dir, processor=processor_dir)
    images = torch.rand(2, 3, 32, 32)
    prompts = ["a photo of a cat", "blue sky"]
    got = metric.score(images, prompts)["pickscore"]

    reference = CLIPModel.from_pretrained(model_dir).eval()
    tokens = metric.models["clip"].tokenizer(prompts, padding=True, return_tensors="pt")
    pixels = ((images * 255).round() / 255 - MEAN) / STD  # 32x32 input: resize and crop are identities
    with torch.no_grad():
        out = reference(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=pixels)
    torch.testing.assert_close(got, out.logits_per_image.diagonal(), atol=1e-4, rtol=1e-4)
    cos = torch.nn.functional.cosine_similarity(out.image_embeds, out.text_embeds)
    torch.testing.assert_close(got / cos, torch.full((2,), 50.0), atol=1e-3, rtol=1e-4)


# ---------------------------------------------------------------------------------------------- ImageReward
def test_image_reward_normalisation_by_hand():
    raw = torch.tensor([IR_MEAN, IR_MEAN + IR_STD, 1.0])
    torch.testing.assert_close(image_reward_from_raw(raw), torch.tensor([0.0, 1.0, (1.0 - 0.16717362830052426)
                                                                           / 1.0333394966054072]))
    assert image_reward_from_raw(torch.tensor([IR_MEAN + IR_STD]), 100.0).item() == pytest.approx(100.0)


def test_image_reward_converter_on_the_full_size_reference_layout():
    """Every key and shape of a real ImageReward.pt (BLIP ViT-L/16, BERT-base with cross-attention, the 5-layer head)
    converts and loads strictly into the transformers modules (meta tensors: no memory)."""
    shapes = image_reward_reference_shapes(**FULL_IR)
    state = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    parts = convert_image_reward_state_dict(state)
    assert len(parts["vision"]) == 4 + 24 * 12 + 2
    assert len(parts["text"]) == 4 + 12 * 26  # 4 embedding tensors (position_ids buffer dropped), 26 per layer
    assert len(parts["head"]) == 10
    with torch.device("meta"):
        model = ImageRewardModel.from_checkpoint(state, med_config(768, 12, 3072, 30524, 512, heads=12))
    assert model.vision.config.num_attention_heads == 16 and model.vision.config.image_size == 224
    assert model.text.config.encoder_hidden_size == 1024
    assert sum(p.numel() for p in model.parameters()) == sum(
        math.prod(s) for k, s in shapes.items() if not k.endswith("position_ids") and "_proj" not in k)


def test_image_reward_converter_maps_each_reference_tensor(tmp_path):
    state = build_image_reward(tmp_path)["state"]
    parts = convert_image_reward_state_dict(state)
    v, t, h = parts["vision"], parts["text"], parts["head"]
    assert v["embeddings.class_embedding"] is state["blip.visual_encoder.cls_token"]
    assert v["embeddings.position_embedding"] is state["blip.visual_encoder.pos_embed"]
    assert v["embeddings.patch_embedding.weight"] is state["blip.visual_encoder.patch_embed.proj.weight"]
    assert v["encoder.layers.1.layer_norm2.bias"] is state["blip.visual_encoder.blocks.1.norm2.bias"]
    assert v["encoder.layers.0.self_attn.qkv.weight"] is state["blip.visual_encoder.blocks.0.attn.qkv.weight"]
    assert v["encoder.layers.0.self_attn.projection.weight"] is state["blip.visual_encoder.blocks.0.attn.proj.weight"]
    assert v["encoder.layers.1.mlp.fc2.weight"] is state["blip.visual_encoder.blocks.1.mlp.fc2.weight"]
    assert v["post_layernorm.weight"] is state["blip.visual_encoder.norm.weight"]
    assert t["encoder.layer.1.crossattention.self.key.weight"] is \
        state["blip.text_encoder.encoder.layer.1.crossattention.self.key.weight"]
    assert "embeddings.position_ids" not in t
    assert h["layers.7.bias"] is state["mlp.layers.7.bias"]


def test_image_reward_converter_rejects_foreign_or_incomplete_checkpoints(tmp_path):
    state = dict(build_image_reward(tmp_path)["state"])
    with pytest.raises(WeightsMismatchError, match="unexpected blip.itm_head.weight"):
        convert_image_reward_state_dict({**state, "blip.itm_head.weight": torch.zeros(2, 2)})
    with pytest.raises(WeightsMismatchError, match="missing every head tensor"):
        convert_image_reward_state_dict({k: v for k, v in state.items() if not k.startswith("mlp.")})
    missing = {k: v for k, v in state.items() if k != "blip.text_encoder.encoder.layer.0.output.dense.bias"}
    cfg = med_config(32, 2, 64, state["blip.text_encoder.embeddings.word_embeddings.weight"].shape[0], 40, heads=2)
    with pytest.raises(WeightsMismatchError, match="missing encoder.layer.0.output.dense.bias"):
        ImageRewardModel.from_checkpoint(missing, cfg, vision_head_dim=16)


def reference_blip_vit(state: dict[str, torch.Tensor], pixels: torch.Tensor, heads: int) -> torch.Tensor:
    """BLIP's timm-style ViT written out from its module structure, on the reference key names."""
    p = "blip.visual_encoder."
    x = torch.nn.functional.conv2d(pixels, state[p + "patch_embed.proj.weight"], state[p + "patch_embed.proj.bias"],
                                   stride=state[p + "patch_embed.proj.weight"].shape[-1]).flatten(2).transpose(1, 2)
    x = torch.cat([state[p + "cls_token"].expand(len(x), -1, -1), x], 1) + state[p + "pos_embed"]
    width = x.shape[-1]

    def norm(y, name):
        return torch.nn.functional.layer_norm(y, (width,), state[name + ".weight"], state[name + ".bias"], eps=1e-6)

    blocks = 1 + max(int(k.split(".")[3]) for k in state if k.startswith(p + "blocks."))
    for b in range(blocks):
        q = f"{p}blocks.{b}."
        y = norm(x, q + "norm1")
        qkv = (y @ state[q + "attn.qkv.weight"].T + state[q + "attn.qkv.bias"]).view(len(x), -1, 3, heads,
                                                                                        width // heads)
        qq, kk, vv = qkv.permute(2, 0, 3, 1, 4)
        attn = ((qq @ kk.transpose(-2, -1)) * (width // heads) ** -0.5).softmax(-1)
        y = (attn @ vv).transpose(1, 2).reshape(len(x), -1, width)
        x = x + y @ state[q + "attn.proj.weight"].T + state[q + "attn.proj.bias"]
        y = norm(x, q + "norm2") @ state[q + "mlp.fc1.weight"].T + state[q + "mlp.fc1.bias"]
        x = x + torch.nn.functional.gelu(y) @ state[q + "mlp.fc2.weight"].T + state[q + "mlp.fc2.bias"]
    return norm(x, p + "norm")


def test_image_reward_end_to_end_from_local_files(tmp_path):
    files = build_image_reward(tmp_path)
    metric = build_metric("image_reward", checkpoint=files["folder"], tokenizer=files["tokenizer"],
                          vision_head_dim=16)
    images = torch.rand(3, 3, 40, 48)
    prompts = ["a red cat", "a red cat on the table", "a photo of a dog"]
    got = metric.score(images, prompts)["image_reward"]
    assert got.shape == (3,) and torch.isfinite(got).all()
    model, tokenizer = metric.models["model"], metric.models["tokenizer"]
    assert len(tokenizer) == files["state"]["blip.text_encoder.embeddings.word_embeddings.weight"].shape[0]

    # the vision tower is BLIP's ViT: compare with the reference structure on the raw checkpoint tensors
    pixels = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ours = model.vision(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(ours, reference_blip_vit(files["state"], pixels, heads=2), atol=1e-4, rtol=1e-4)

    # the reported value is scale * (raw - mean) / std of the model's raw reward
    same = torch.rand(1, 3, 32, 32).expand(2, -1, -1, -1)
    scored = metric.score(same, ["a red cat", "a red cat on the table"])["image_reward"]
    tokens = tokenizer(["a red cat", "a red cat on the table"], padding="max_length", truncation=True,
                       max_length=35, return_tensors="pt")
    assert tokens["input_ids"].shape == (2, 35) and (tokens["input_ids"][:, 0] == tokenizer.cls_token_id).all()
    normalized = ((same * 255).round() / 255 - MEAN) / STD  # 32x32: resize and crop are identities
    with torch.no_grad():
        raw = model(normalized, tokens["input_ids"], tokens["attention_mask"])
    torch.testing.assert_close(scored, 100 * (raw - IR_MEAN) / IR_STD, atol=1e-4, rtol=1e-4)
    # [CLS] sees the whole prompt (bidirectional self-attention, med.py's multimodal mode), and the image
    assert abs(scored[0] - scored[1]) > 1e-4
    with torch.no_grad():
        other = model(torch.zeros_like(normalized), tokens["input_ids"], tokens["attention_mask"])
    assert (other - raw).abs().min() > 1e-5


# ---------------------------------------------------------------------------------------------- aesthetic
def hand_head(input_size: int) -> RewardMLP:
    """A head that computes ``2 * x[0] + 5`` (each layer passes coordinate 0 on)."""
    head = RewardMLP(input_size)
    with torch.no_grad():
        for layer in head.layers:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
                layer.weight[0, 0] = 1.0
        head.layers[7].weight[0, 0] = 2.0
        head.layers[7].bias[0] = 5.0
    return head.eval()


def test_aesthetic_on_a_known_embedding():
    head = hand_head(4)
    embeds = torch.tensor([[3.0, 4.0, 0.0, 0.0], [30.0, 40.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(aesthetic_from_embeddings(embeds, head), torch.tensor([6.2, 6.2, 5.0]))


def test_aesthetic_end_to_end_from_local_files(tmp_path, clip_dir):
    from transformers import CLIPModel

    torch.manual_seed(1)
    head = RewardMLP(16)
    torch.save(head.state_dict(), tmp_path / "sac+logos+ava1-l14-linearMSE.pth")
    metric = build_metric("aesthetic", clip=clip_dir, head=str(tmp_path))
    images = torch.rand(2, 3, 32, 32)
    got = metric.score(images, ["", ""])["aesthetic"]
    reference = CLIPModel.from_pretrained(clip_dir).eval()
    with torch.no_grad():
        out = reference.vision_model(pixel_values=((images * 255).round() / 255 - MEAN) / STD)
        embeds = reference.visual_projection(out.pooler_output)
        expected = head.eval()(embeds / embeds.norm(dim=-1, keepdim=True)).squeeze(-1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert metric.conventions()["aesthetic_embedding"] == "L2-normalised CLIP image embedding"
    assert metric.conventions()["aesthetic_dtype"] == "CLIP float32, head float32"  # CPU default


# ---------------------------------------------------------------------------------------------- CLIP score
def test_clip_score_is_100_cos_per_sample_and_clamps_the_mean(clip_dir):
    from transformers import CLIPModel

    metric = build_metric("clip_score", clip=clip_dir)
    images = torch.rand(3, 3, 32, 32)
    prompts = ["a cat", "a photo of a red car", "tree"]
    got = metric.score(images, prompts)["clip_score"]
    reference = CLIPModel.from_pretrained(clip_dir).eval()
    tokens = metric.models["clip"].tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = reference(**tokens, pixel_values=((images * 255).round() / 255 - MEAN) / STD)
    torch.testing.assert_close(got, 100 * torch.nn.functional.cosine_similarity(out.image_embeds, out.text_embeds),
                               atol=1e-4, rtol=1e-4)
    negative = build_metric("clip_score", clip=clip_dir)
    negative.total += -12.5  # a mean of -12.5 reported as 0
    negative.count += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics: compute before update
        assert negative.compute()["clip_score"] == 0.0


def test_hps_checkpoint_is_loaded_strictly(tmp_path):
    path = build_hps_checkpoint(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"].pop("module.ln_final.weight")
    torch.save(checkpoint, path)
    metric = build_metric("hpsv2", checkpoint=str(path), architecture=TINY_OPEN_CLIP)
    with pytest.raises(WeightsMismatchError, match="missing ln_final.weight"):
        metric.load("cpu")


@pytest.mark.parametrize("name", ["clip_score", "hpsv2", "image_reward"])
def test_half_precision_scores_match_fp32(name, tmp_path, clip_dir):
    """The fp16 path (the default on GPU) exercised on CPU: weights cast, inputs follow, values close to fp32."""
    if name == "clip_score":
        kwargs = {"clip": clip_dir}
    elif name == "hpsv2":
        build_hps_checkpoint(tmp_path)
        kwargs = {"checkpoint": str(tmp_path), "architecture": TINY_OPEN_CLIP}
    else:
        files = build_image_reward(tmp_path)
        kwargs = {"checkpoint": files["folder"], "tokenizer": files["tokenizer"], "vision_head_dim": 16}
    images, prompts = torch.rand(2, 3, 40, 36), ["a red cat", "a photo of a dog"]
    full = build_metric(name, **kwargs).score(images, prompts)[name]
    half_metric = build_metric(name, dtype="float16", **kwargs)
    half = half_metric.score(images, prompts)[name]
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    backbone = half_metric.models.get("clip")
    assert (backbone.dtype if backbone else next(half_metric.models["model"].parameters()).dtype) == torch.float16
    torch.testing.assert_close(half, full, atol=1.0, rtol=0.02)
    assert half_metric.conventions()[f"{name}_dtype"] == "float16"
