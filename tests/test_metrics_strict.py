"""Scorer weights load strictly: a checkpoint that lacks a tensor, or holds one the model does not have, is an error
that names the keys (one line), never a model with silently randomised layers. Only documented keys may differ:
``position_ids`` index buffers and Mask2Former's training-loss weights (metrics.weights.IGNORED_KEYS)."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from metrics import build_metric
from metrics.weights import WeightsMismatchError, clear_cache
from tiny_scorers import (TINY_OPEN_CLIP, build_alexnet_features, build_clip, build_hps_checkpoint, build_image_reward,
                          build_mask2former, build_raft)


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()  # a model loaded by another test from the same folder must not hide the edited file
    yield
    clear_cache()


def edit_safetensors(folder, drop=(), add=None) -> None:
    path = f"{folder}/model.safetensors"
    state = load_file(path)
    for key in drop:
        state.pop(key)
    state.update(add or {})
    save_file(state, path, metadata={"format": "pt"})


def assert_names(err: pytest.ExceptionInfo, *keys: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for key in keys:
        assert key in message, message


@pytest.mark.parametrize("name", ["clip_score", "pickscore", "aesthetic", "mtscore_clip", "geneval"])
def test_a_transformers_clip_missing_or_with_extra_keys_is_refused(tmp_path, name):
    folder = build_clip(tmp_path / "clip")
    edit_safetensors(folder, drop=["visual_projection.weight"], add={"text_model.extra.weight": torch.zeros(2)})
    options = {"clip_score": {"clip": folder}, "pickscore": {"model": folder, "processor": folder},
               "aesthetic": {"clip": folder}, "mtscore_clip": {"clip": folder},
               "geneval": {"clip": folder, "detector": build_mask2former(tmp_path / "m2f")}}[name]
    if name == "aesthetic":  # the head loads after the CLIP: give it a real one
        from metrics.heads import RewardMLP

        torch.save(RewardMLP(16).state_dict(), tmp_path / "head.pth")
        options["head"] = str(tmp_path / "head.pth")
    with pytest.raises(WeightsMismatchError) as err:
        build_metric(name, **options).load("cpu")
    assert_names(err, name, "visual_projection.weight", "text_model.extra.weight")


def test_position_ids_buffers_may_be_present_or_absent(tmp_path):
    folder = build_clip(tmp_path / "clip")
    edit_safetensors(folder, add={"text_model.embeddings.position_ids": torch.arange(77)[None],
                                  "vision_model.embeddings.position_ids": torch.arange(17)[None]})
    metric = build_metric("clip_score", clip=folder)
    metric.load("cpu")
    assert metric.score(torch.rand(1, 3, 32, 32), ["a cat"])["clip_score"].shape == (1,)


def test_the_geneval_detector_missing_a_key_is_refused(tmp_path):
    detector = build_mask2former(tmp_path / "m2f")
    key = next(k for k in load_file(f"{detector}/model.safetensors") if k.startswith("class_predictor"))
    edit_safetensors(detector, drop=[key])
    with pytest.raises(WeightsMismatchError) as err:
        build_metric("geneval", detector=detector, clip=build_clip(tmp_path / "clip")).load("cpu")
    assert_names(err, "geneval", key)


def test_hps_checkpoint_missing_or_with_extra_keys_is_refused(tmp_path):
    path = build_hps_checkpoint(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"].pop("module.ln_final.weight")
    checkpoint["state_dict"]["module.visual.extra"] = torch.zeros(2)
    torch.save(checkpoint, path)
    with pytest.raises(WeightsMismatchError) as err:
        build_metric("hpsv2", checkpoint=str(path), architecture=TINY_OPEN_CLIP).load("cpu")
    assert_names(err, "hpsv2", "ln_final.weight", "visual.extra")


@pytest.mark.parametrize("key,named", [
    ("blip.visual_encoder.blocks.1.norm2.bias", "encoder.layers.1.layer_norm2.bias"),
    ("blip.text_encoder.encoder.layer.0.crossattention.self.key.weight", "encoder.layer.0.crossattention.self.key.weight"),
])
def test_image_reward_missing_a_tensor_is_refused(tmp_path, key, named):
    files = build_image_reward(tmp_path)
    torch.save({k: v for k, v in files["state"].items() if k != key}, files["checkpoint"])
    with pytest.raises(WeightsMismatchError) as err:
        build_metric("image_reward", checkpoint=files["folder"], tokenizer=files["tokenizer"],
                     vision_head_dim=16).load("cpu")
    assert_names(err, "image_reward", files["checkpoint"], named)


def test_aesthetic_head_missing_a_tensor_is_refused(tmp_path):
    from metrics.heads import RewardMLP

    head = RewardMLP(16).state_dict()
    head.pop("layers.4.bias")
    torch.save(head, tmp_path / "head.pth")
    with pytest.raises(WeightsMismatchError) as err:
        build_metric("aesthetic", clip=build_clip(tmp_path / "clip"), head=str(tmp_path / "head.pth")).load("cpu")
    assert_names(err, "aesthetic", "layers.4.bias")


def test_lpips_backbone_missing_a_tensor_is_refused(tmp_path):
    path = build_alexnet_features(tmp_path / "alexnet.pth")
    state = torch.load(path, weights_only=True)
    state.pop("features.3.weight")
    torch.save(state, path)
    with pytest.raises(WeightsMismatchError) as err:
        build_metric("frame_lpips", backbone=str(path)).load("cpu")
    assert_names(err, "frame_lpips", "net.slice2.3.weight")


def test_raft_missing_a_tensor_is_refused(tmp_path):
    path = build_raft(tmp_path / "raft.pth")
    state = torch.load(path, weights_only=True)
    key = sorted(state)[0]
    state.pop(key)
    torch.save(state, path)
    with pytest.raises(WeightsMismatchError) as err:
        build_metric("chscore_flow", raft="raft_small", weights=str(path)).load("cpu")
    assert_names(err, "chscore_flow", key)
