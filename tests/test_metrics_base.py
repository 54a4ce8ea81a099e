"""The metric contract: registry, weight resolution and its one-line error, media checks, models kept out of
state_dict and shared through the process cache, per-tag means, and the two-process (gloo) sync."""

from __future__ import annotations

import copy
import json
import math
import pickle

import pytest
import torch
import torch.multiprocessing as mp

from metrics import METRICS, WeightsNotFoundError, build_metric, metric_names
from metrics.weights import resolve_file, resolve_folder
from tiny_scorers import TaggedEcho, build_clip, sync_child, sync_rank

EXPECTED = {"hpsv2", "pickscore", "image_reward", "aesthetic", "clip_score", "geneval", "frame_lpips", "frame_ssim",
            "chscore_flow", "mtscore_clip"}


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return build_clip(tmp_path_factory.mktemp("clip"))


def test_registry_maps_every_name_to_its_class():
    assert EXPECTED <= set(METRICS)
    for name in EXPECTED:
        cls = METRICS[name]
        assert cls.name == name and cls.full_state_update is False
        assert cls.media_kind == ("video" if name in {"frame_lpips", "frame_ssim", "chscore_flow", "mtscore_clip"}
                                  else "image")
    assert isinstance(build_metric("frame_ssim"), METRICS["frame_ssim"])
    with pytest.raises(ValueError, match="unknown metric 'nope'; known metrics: .*pickscore.*shapebench"):
        build_metric("nope")
    assert set(metric_names()) == EXPECTED | {"shapebench"}


# ---------------------------------------------------------------------------------------------- weights
def test_resolve_file_accepts_file_folder_and_torch_cache(tmp_path, monkeypatch):
    f = tmp_path / "w.pth"
    torch.save({"a": torch.ones(1)}, f)
    assert resolve_file(f, "w.pth", metric="m", option="o") == f
    assert resolve_file(tmp_path, "w.pth", metric="m", option="o") == f
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    (tmp_path / "th" / "hub" / "checkpoints").mkdir(parents=True)
    cached_file = tmp_path / "th" / "hub" / "checkpoints" / "net.pth"
    torch.save({}, cached_file)
    assert resolve_file("net.pth", "net.pth", metric="m", option="o", torch_cache=True) == cached_file


@pytest.mark.parametrize("ref", ["/no/such/HPS_v2.1_compressed.pt", "xswu/HPSv2"])
def test_missing_weight_is_one_clear_line(ref):
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_file(ref, "HPS_v2.1_compressed.pt", metric="hpsv2", option="checkpoint")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("hpsv2: weight file ")
    assert "checkpoint=<file or folder>" in message
    assert "HPS_v2.1_compressed.pt" in message
    err = info.value  # no chained hub traceback printed under it
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_missing_weight_surfaces_from_score_naming_the_option(tmp_path, monkeypatch):
    metric = build_metric("hpsv2", checkpoint=str(tmp_path))  # an empty folder
    with pytest.raises(WeightsNotFoundError, match=r"'HPS_v2.1_compressed.pt' not found \(not in folder .*checkpoint="):
        metric.score(torch.rand(1, 3, 8, 8), ["a cat"])
    with pytest.raises(WeightsNotFoundError, match=r"'alexnet-owt-7be5be79.pth' not found \(no such file or folder "
                                                   r".*none.pth\).*backbone="):
        build_metric("frame_lpips", backbone=str(tmp_path / "none.pth")).load("cpu")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    with pytest.raises(WeightsNotFoundError, match=r"'raft_large_C_T_SKHT_V2-ff5fadd5.pth' not found \(not in torch "
                                                   r"hub cache .*empty_torch_home.*weights="):
        build_metric("chscore_flow").load("cpu")


def test_folder_without_weights_and_offline_hub_id_are_reported(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WeightsNotFoundError, match=r"'model.safetensors' not found \(not in folder"):
        resolve_folder(tmp_path, metric="clip_score", option="clip")
    with pytest.raises(WeightsNotFoundError, match="hub repo 'nobody/no-such-clip' not in the local HF cache"):
        resolve_folder("nobody/no-such-clip", metric="clip_score", option="clip")


def test_weights_error_pickles():
    err = WeightsNotFoundError("m", "f.pt", "somewhere", "opt")
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


# ---------------------------------------------------------------------------------------------- media
def test_media_checks_give_one_clear_error(clip_dir):
    image_metric = build_metric("clip_score", clip=clip_dir)
    with pytest.raises(ValueError, match=r"clip_score scores images .* got a video batch \(2, 4, 3, 8, 8\)"):
        image_metric.score(torch.rand(2, 4, 3, 8, 8), ["a", "b"])
    with pytest.raises(ValueError, match=r"media must be in \[0, 1\], got values in \[-1"):
        image_metric.score(torch.rand(1, 3, 8, 8) * 2 - 1.5, ["a"])
    with pytest.raises(TypeError, match="float tensor"):
        image_metric.score(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), ["a"])
    with pytest.raises(ValueError, match="1 media, 2 prompts"):
        image_metric.score(torch.rand(1, 3, 8, 8), ["a", "b"])
    with pytest.raises(ValueError, match=r"frame_ssim scores videos \(B, F, 3, H, W\)"):
        build_metric("frame_ssim").score(torch.rand(2, 3, 8, 8), ["a", "b"])
    with pytest.raises(ValueError, match="chscore_flow needs at least 3 frames per video, got 2"):
        build_metric("chscore_flow").score(torch.rand(1, 2, 3, 8, 8), ["a"])
    assert image_metric.count == 0  # nothing was accumulated


# ---------------------------------------------------------------------------------------------- models
def test_models_stay_out_of_state_dict_and_are_shared(clip_dir):
    scores = [build_metric("clip_score", clip=clip_dir), build_metric("mtscore_clip", clip=clip_dir),
              build_metric("clip_score", clip=clip_dir)]
    for m in scores:
        m.load("cpu")
    backbones = [m.models["clip"] for m in scores]
    assert backbones[0] is backbones[1] is backbones[2]  # one CLIP per process for the same weights
    assert backbones[0].dtype == torch.float32  # fp32 on CPU
    for m in scores:
        assert list(m.children()) == []
        assert all(not k.startswith(("clip", "_held")) for k in m.state_dict(keep_vars=True))
    clone = copy.deepcopy(scores[0])
    assert clone.models == {}  # a copy reloads from the process cache instead of duplicating weights
    clone.load("cpu")
    assert clone.models["clip"] is backbones[0]
    restored = pickle.loads(pickle.dumps(scores[0]))
    assert restored.models == {}


def test_score_returns_per_sample_columns_and_update_accumulates_them(clip_dir):
    metric = build_metric("clip_score", clip=clip_dir)
    images = torch.rand(3, 3, 40, 40)
    first = metric.score(images[:2], ["a red cat", "a dog"])
    second = metric.score(images[2:], ["a tree"])
    assert first["clip_score"].shape == (2,) and second["clip_score"].shape == (1,)
    assert metric.count == 0  # scoring alone changes no state
    metric.update(first)
    metric.update(second)
    values = torch.cat([first["clip_score"], second["clip_score"]]).double()
    assert metric.count == 3
    expected = max(values.mean().item(), 0.0)
    assert metric.compute()["clip_score"] == pytest.approx(expected, rel=1e-6)


def test_tags_give_per_tag_means_and_their_unweighted_mean():
    metric = TaggedEcho()
    meta = [{"tag": "a", "value": 1.0}, {"tag": "a", "value": 0.0}, {"tag": "a", "value": 0.0},
            {"tag": "b", "value": 1.0}]
    metric.update(metric.score(torch.zeros(4, 3, 1, 1), ["p"] * 4, meta), meta)
    out = metric.compute()
    assert out["echo/a"] == pytest.approx(1 / 3)
    assert out["echo/b"] == pytest.approx(1.0)
    assert out["echo"] == pytest.approx((1 / 3 + 1) / 2)  # not the pooled 2/4


def test_update_takes_stored_values_and_needs_metadata_for_tags():
    metric = TaggedEcho()
    metric.update(torch.tensor([1.0, float("nan"), 0.5]), [{"tag": "a"}, {"tag": "a"}, {"tag": "b"}])
    assert metric.count == 2  # the NaN is left out
    assert metric.compute() == pytest.approx({"echo/a": 1.0, "echo/b": 0.5, "echo": 0.75})
    with pytest.raises(ValueError, match="one metadata dict per value"):
        metric.update(torch.tensor([1.0]))


# ---------------------------------------------------------------------------------------------- distributed
def test_two_process_gloo_sync_equals_single_process(tmp_path):
    torch.manual_seed(0)
    base = torch.rand(5, 1, 3, 16, 16)
    videos = (base + 0.2 * torch.rand(5, 3, 3, 16, 16)).clamp(0, 1)  # 5 videos of 3 frames: uneven split 3 / 2
    scores = torch.tensor([0.0, 1.0, 1.0, 0.5, 1.0])
    tags = ["a", "a", "b", "a", "b"]
    # rank 1 is a spawned interpreter, rank 0 is this process (one fresh import of torch/torchmetrics, not two)
    args = (2, f"file://{tmp_path / 'rendezvous'}", str(tmp_path), videos, scores, tags)
    child = mp.get_context("spawn").Process(target=sync_child, args=(1, *args))
    child.start()
    try:
        sync_rank(0, *args)
    finally:
        child.join(timeout=300)
    assert child.exitcode == 0
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    single = build_metric("frame_ssim")
    single.update(single.score(videos, ["p"] * 5))
    echo = TaggedEcho()
    echo_meta = [{"tag": t, "value": float(s)} for t, s in zip(tags, scores)]
    echo.update(echo.score(torch.zeros(5, 3, 1, 1), ["p"] * 5, echo_meta), echo_meta)
    for result in results:  # every rank gets the global value
        assert result["frame_ssim"]["frame_ssim"] == pytest.approx(single.compute()["frame_ssim"], rel=1e-12)
        assert result["echo"] == pytest.approx(echo.compute())
    assert results[0]["echo"]["echo/a"] == pytest.approx(0.5)  # (0 + 1 + 0.5) / 3
    assert not math.isnan(results[0]["frame_ssim"]["frame_ssim"])
