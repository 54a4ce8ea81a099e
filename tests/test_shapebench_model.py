"""ShapeBench model: tokenizer, folder format, training (seeded, resumable) and export."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch

from zeta_eval.shapebench import model as M
from datamodules.shapebench import prompts as P
from zeta_eval.shapebench import train as T
from zeta_eval.shapebench.export import export, folder_megabytes

ASSETS = os.path.join(os.path.dirname(M.__file__), "..", "assets", "shapebench")


def test_tokenizer_loads_with_autotokenizer_and_handles_the_empty_prompt(tmp_path):
    from transformers import AutoTokenizer

    M.build_tokenizer().save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    ids = M.tokenize(tok, ["", "a red circle left of a blue cross"])
    assert ids.shape == (2, M.MAX_TOKENS)
    bos, eos, pad = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    assert ids[0].tolist() == [bos, eos] + [pad] * (M.MAX_TOKENS - 2)
    words = "a red circle left of a blue cross".split()
    assert M.tokenize(tok, ["an orange ring above a teal diamond", "four pink rings"]).shape == (2, M.MAX_TOKENS)
    assert ids[1, 1:9].tolist() == tok.convert_tokens_to_ids(words)
    assert ids[1, 9] == eos and ids[1, 10:].eq(pad).all()
    # one prompt alone is padded exactly as in a batch
    assert torch.equal(M.tokenize(tok, ["a star"])[0], M.tokenize(tok, ["a star", "two red crosses"])[0])
    with pytest.raises(ValueError, match="outside the ShapeBench vocabulary"):
        M.tokenize(tok, ["a photo of a dog"])
    with pytest.raises(ValueError, match="sequence of strings"):
        M.tokenize(tok, "a star")


def test_model_folder_round_trip(tmp_path):
    model = M.new_model(seed=3)
    M.save_model(model, tmp_path, trained_steps=0)
    info = json.loads((tmp_path / "model_index.json").read_text())
    assert info["format"] == M.FORMAT and info["prediction_type"] == "v_prediction"
    for sub, name in (("unet", "diffusion_pytorch_model.safetensors"), ("text_encoder", "model.safetensors"),
                      ("tokenizer", "tokenizer.json"), ("scheduler", "scheduler_config.json")):
        assert (tmp_path / sub / name).is_file()
    loaded = M.load_model(tmp_path)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([10, 900])
    with torch.no_grad():
        h0, h1 = model.encode(["a star", ""]), loaded.encode(["a star", ""])
        assert torch.equal(h0, h1)
        assert torch.equal(model.unet.eval()(x, t, encoder_hidden_states=h0).sample,
                           loaded.unet(x, t, encoder_hidden_states=h1).sample)
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert loaded.scheduler.config.clip_sample is False
    with pytest.raises(FileNotFoundError, match="not a ShapeBench model folder"):
        M.load_model(tmp_path / "unet")


def test_unet_uses_groupnorm_only():
    unet = M.build_unet()
    kinds = {type(m).__name__ for m in unet.modules()}
    assert "GroupNorm" in kinds
    assert not any("BatchNorm" in k for k in kinds)


def test_batches_are_a_pure_function_of_seed_and_step():
    x1, c1 = T.make_batch(0, 17, 6, 0.12)
    x2, c2 = T.make_batch(0, 17, 6, 0.12)
    x3, _ = T.make_batch(0, 18, 6, 0.12)
    assert torch.equal(x1, x2) and c1 == c2 and not torch.equal(x1, x3)
    assert x1.shape == (6, 3, 32, 32) and x1.min() >= -1 and x1.max() <= 1
    _, caps = T.make_batch(0, 0, 400, 0.12)
    frac_empty = sum(c == "" for c in caps) / len(caps)
    assert 0.07 < frac_empty < 0.18
    # the caption noise changes what the images show, a pure function of (seed, step) too
    clean, _ = T.make_batch(0, 17, 6, 0.12, P.NO_NOISE)
    noisy, _ = T.make_batch(0, 17, 6, 0.12, P.CaptionNoise(1.0, 1.0, 1.0, 1.0))
    assert not torch.equal(clean, noisy)
    assert torch.equal(noisy, T.make_batch(0, 17, 6, 0.12, P.CaptionNoise(1.0, 1.0, 1.0, 1.0))[0])


def test_lr_schedule():
    args = T.parse_args(["--out", "x", "--steps", "1000", "--warmup", "100", "--lr", "1e-3"])
    assert T.lr_at(0, args) == pytest.approx(1e-5)
    assert T.lr_at(99, args) == pytest.approx(1e-3)
    assert T.lr_at(1000, args) == pytest.approx(1e-4)
    with pytest.raises(SystemExit):
        T.parse_args(["--out", "x", "--cfg-dropout", "1.5"])


def test_caption_noise_arguments():
    args = T.parse_args(["--out", "x"])
    assert T.caption_noise(args) == P.CaptionNoise() == P.CaptionNoise(0.25, 0.15, 0.2, 0.15)
    args = T.parse_args(["--out", "x", "--noise-color", "0", "--noise-shape", "0.5", "--noise-count", "1",
                         "--noise-position", "0.05"])
    assert T.caption_noise(args) == P.CaptionNoise(0.0, 0.5, 1.0, 0.05)
    for flag in ("--noise-color", "--noise-shape", "--noise-count", "--noise-position"):
        with pytest.raises(SystemExit):
            T.parse_args(["--out", "x", flag, "1.2"])


def _train(out, steps, resume=False, snapshot_every=0):
    # strong caption noise: resuming must replay it exactly
    argv = ["--out", str(out), "--steps", str(steps), "--batch-size", "3", "--log-every", "1", "--seed", "4",
            "--checkpoint-minutes", "1000", "--noise-color", "0.5", "--noise-shape", "0.5", "--noise-count", "0.5",
            "--noise-position", "0.5", "--snapshot-every", str(snapshot_every)]
    T.main(argv + (["--resume"] if resume else []))


def test_training_is_seeded_and_resumes_exactly(tmp_path):
    _train(tmp_path / "a", 2, snapshot_every=1)
    _train(tmp_path / "b", 1)
    with pytest.raises(ValueError, match="--resume"):
        _train(tmp_path / "b", 2)
    _train(tmp_path / "b", 2, resume=True)
    a = T.load_checkpoint(T.checkpoint_paths(str(tmp_path / "a"))[-1])
    b = T.load_checkpoint(T.checkpoint_paths(str(tmp_path / "b"))[-1])
    assert a["step"] == b["step"] == 2
    for key in ("unet", "text_encoder", "ema"):
        for name, v in a[key].items():
            assert torch.equal(v, b[key][name]), (key, name)
    with open(tmp_path / "b" / T.LOG_NAME) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2]
    with open(tmp_path / "a" / T.LOG_NAME) as f:
        assert [r["loss"] for r in csv.DictReader(f)] == [r["loss"] for r in rows]
    assert (tmp_path / "a" / T.CURVE_NAME).stat().st_size > 1000
    pipeline_info = json.loads((tmp_path / "a" / "pipeline" / "model_index.json").read_text())
    assert pipeline_info["trained_steps"] == 2 and pipeline_info["weights"] == "ema"
    assert pipeline_info["training_args"]["noise_color"] == 0.5 and pipeline_info["training_args"]["seed"] == 4
    # snapshots: the EMA model at every --snapshot-every steps, kept (the last one equals the pipeline)
    assert sorted(os.listdir(tmp_path / "a" / T.SNAPSHOT_DIR)) == ["step_0000001", "step_0000002"]
    snap = M.load_model(tmp_path / "a" / T.SNAPSHOT_DIR / "step_0000002")
    assert snap.manifest["trained_steps"] == 2
    assert torch.equal(snap.unet.conv_in.weight, M.load_model(tmp_path / "a" / "pipeline").unet.conv_in.weight)
    assert not (tmp_path / "b" / T.SNAPSHOT_DIR).exists()
    # export: EMA weights, under the size limit, loadable
    out = export(str(tmp_path / "a"), str(tmp_path / "exported"))
    info = json.loads(open(os.path.join(out, "model_index.json")).read())
    assert info["trained_steps"] == 2 and info["weights"] == "ema" and info["format"] == "zeta_eval.shapebench/2"
    assert info["training_args"]["noise_shape"] == 0.5
    assert folder_megabytes(out) < 20
    loaded = M.load_model(out)
    ema_w = a["ema"]["unet.conv_in.weight"]
    assert torch.equal(loaded.unet.conv_in.weight, ema_w)
    assert not torch.equal(ema_w, a["unet"]["conv_in.weight"])
    with pytest.raises(ValueError, match="over --max_mb"):
        export(str(tmp_path / "a"), str(tmp_path / "too_big"), max_mb=1.0)
    with pytest.raises(ValueError, match="checkpoint must be"):
        export(str(tmp_path / "missing.pt"), str(tmp_path / "x"))


def test_packaged_model_folder():
    if not os.path.isfile(os.path.join(ASSETS, "model_index.json")):
        pytest.fail("the packaged ShapeBench model is missing: zeta_eval/assets/shapebench")
    assert folder_megabytes(ASSETS) <= 20
    model = M.load_model(ASSETS)
    assert model.manifest["trained_steps"] > 0
    assert M.count_parameters(model.unet) == M.count_parameters(M.build_unet())
