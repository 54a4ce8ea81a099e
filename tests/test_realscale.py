"""Real-size architectures with random weights (benchmarks/realscale): the published sizes, the fast random init,
the adapters' in-memory pipeline hook, and (slow) the end-to-end check of the adapters and scorers at real size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tiny_models import TinyZoo, run_adapter

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # benchmarks.realscale

from benchmarks.realscale import models  # noqa: E402


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> TinyZoo:
    return TinyZoo(tmp_path_factory.mktemp("tiny_realscale"))


# ---------------------------------------------------------------------------------------------- architectures
def test_sdxl_and_sd21_have_their_published_parameter_counts():
    # on the meta device nothing is allocated: the builders check every component's count against the JSON
    sdxl = models.sdxl_pipeline(torch.float16, device="meta")
    sd21 = models.sd21_pipeline(torch.float16, device="meta")
    assert models.count_parameters(sdxl.unet) == 2_567_463_684
    assert models.count_parameters(sdxl.text_encoder) + models.count_parameters(sdxl.text_encoder_2) == 817_720_320
    assert models.count_parameters(sd21.unet) == 865_910_724
    assert sdxl.unet.config.transformer_layers_per_block == [1, 2, 10]
    assert sd21.scheduler.config.prediction_type == "v_prediction"


def test_flow_models_have_their_published_parameter_counts():
    """SD 3.5 Medium and Large, FLUX.1-dev, Wan 2.1 1.3B and 14B on the meta device: every component is checked
    against the JSON by the builders; the totals and the layouts are asserted here."""
    medium = models.sd35_pipeline("medium", torch.bfloat16, device="meta")
    tr = medium.transformer
    assert models.count_parameters(tr) + tr.pos_embed.pos_embed.numel() == 2_469_663_936  # the checkpoint's elements
    assert models.count_parameters(medium.text_encoder_3) == 4_762_310_656
    assert medium.text_encoder_3.shared.weight is medium.text_encoder_3.encoder.embed_tokens.weight  # tied again
    assert len(tr.config.dual_attention_layers) == 13 and medium.scheduler.config.shift == 3.0
    large = models.sd35_pipeline("large", torch.bfloat16, device="meta", t5=False)
    assert large.text_encoder_3 is None
    assert round((models.count_parameters(large.transformer) + large.transformer.pos_embed.pos_embed.numel())
                 / 1e9, 1) == 8.1
    flux = models.flux_pipeline(torch.bfloat16, device="meta")
    assert models.count_parameters(flux.transformer) == 11_901_408_320
    assert flux.transformer.config.guidance_embeds and flux.scheduler.config.use_dynamic_shifting
    for variant, count in (("1_3b", 1_418_996_800), ("14b", 14_288_491_584)):
        wan = models.wan_pipeline(variant, torch.bfloat16, device="meta")
        assert models.count_parameters(wan.transformer) == count
        assert models.count_parameters(wan.text_encoder) == 5_680_910_336
        assert models.count_parameters(wan.vae) == 126_892_531
    for name, count in (("flux_1_dev", 11_901_408_320), ("wan_2_1_t2v_14b", 14_288_491_584)):
        transformer, _ = models.flow_transformer(name, torch.bfloat16, "meta")
        assert models.count_parameters(transformer) == count


def test_the_sd3_count_check_rejects_another_architecture():
    counts = models.published("sd_3_5_medium")
    transformer, _ = models.flow_transformer("sd_3_5_medium", torch.bfloat16, "meta")
    assert models.check_sd3_transformer("medium", transformer, counts) == 2_469_663_936
    with pytest.raises(AssertionError, match="checkpoint elements"):
        models.check_sd3_transformer("medium", transformer, {**counts, "transformer_elements": 2_469_663_937})
    with pytest.raises(AssertionError, match="8.1 B"):
        models.check_sd3_transformer("medium", transformer, {"transformer_billions": 8.1})


def test_scorer_networks_have_their_published_parameter_counts():
    hps, tokenizer = models.open_clip_vit_h(torch.float16, device="meta")
    assert round(models.count_parameters(hps) / 1e6, 2) == 986.11
    assert round(models.count_parameters(hps.visual) / 1e6, 2) == 632.08
    assert tokenizer("a cat").shape == (1, 77)  # open_clip's own tokenizer, no download
    pick, _ = models.clip_model("clip_vit_h_14", torch.float16, device="meta")
    assert round(models.count_parameters(pick) / 1e6, 2) == 986.11
    clip_l, _ = models.clip_model("clip_vit_large_patch14", torch.float16, device="meta")
    assert models.count_parameters(clip_l) == 427_616_513
    ir, _, med_config = models.image_reward_model(torch.float16, device="meta")
    assert ir.vision.config.hidden_size == 1024 and ir.vision.config.num_hidden_layers == 24
    assert med_config["vocab_size"] == 30524


def test_check_count_rejects_another_architecture():
    layer = nn.Linear(3, 4)  # 16 parameters
    assert models.check_count("layer", layer, 16) == 16
    with pytest.raises(AssertionError, match="16 parameters, the published architecture has 17"):
        models.check_count("layer", layer, 17)
    with pytest.raises(AssertionError, match="0.00 M parameters"):
        models.check_count("layer", layer, millions=0.01)


# ---------------------------------------------------------------------------------------------- fast random init
class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.up = nn.Linear(16, 256)
        self.norm = nn.LayerNorm(256)
        self.down = nn.Linear(256, 16)
        self.unembed = nn.Linear(16, 50, bias=False)
        self.register_buffer("position_ids", torch.arange(7), persistent=False)


def _materialised(seed: int) -> _Tied:
    with models.empty_parameters():
        net = _Tied()
    net.unembed.weight = net.embed.weight  # tied after construction, as transformers' tie_weights does
    assert net.up.weight.device.type == "meta" and net.position_ids.device.type == "cpu"
    return models.RandomInit(seed).materialise(net, torch.float32)


def test_random_init_is_deterministic_scaled_and_complete():
    a, b, c = _materialised(0), _materialised(0), _materialised(1)
    for (name, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert torch.equal(pa, pb), name
        assert pa.device.type == "cpu" and not pa.requires_grad
    assert not torch.equal(a.up.weight, c.up.weight)
    assert a.unembed.weight is a.embed.weight  # tied parameters stay tied
    assert torch.equal(a.position_ids, torch.arange(7))  # buffers are built for real, untouched
    assert torch.equal(a.norm.weight, torch.ones(256)) and torch.equal(a.norm.bias, torch.zeros(256))
    assert torch.equal(a.up.bias, torch.zeros(256))
    assert abs(float(a.up.weight.std()) - 16 ** -0.5) < 0.02  # 1 / sqrt(fan_in)
    assert abs(float(a.down.weight.std()) - 256 ** -0.5) < 0.005
    assert not torch.equal(a.up.weight[0], a.up.weight[1])  # rows are different windows of the block


def test_random_init_tiles_parameters_larger_than_its_block():
    init = models.RandomInit(0)
    values = init.normal((models.BLOCK + 10,), 1.0, torch.float32)
    assert values.shape == (models.BLOCK + 10,)
    assert torch.equal(values[models.BLOCK:], values[:10])
    assert init.normal((5,), 2.0, torch.bfloat16).dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------------- adapters
def test_adapter_runs_a_pipeline_it_is_given_exactly_like_one_it_loads(zoo):
    from diffusers import StableDiffusionXLPipeline

    from samplers import Zeta
    from zeta_eval.adapters import build_adapter

    loaded = zoo.adapter("sdxl")
    given = build_adapter("sdxl", model="in-memory/sdxl", dtype="float32")
    given.load("cpu", pipeline=StableDiffusionXLPipeline.from_pretrained(zoo.folder("sdxl")))
    sampler = Zeta(gamma1=5.5, warmup_steps=1)
    lat_loaded, media_loaded, _ = run_adapter(loaded, sampler, ["a red car", "a cat"], [3, 4], steps=4)
    lat_given, media_given, _ = run_adapter(given, sampler, ["a red car", "a cat"], [3, 4], steps=4)
    assert torch.equal(lat_loaded, lat_given) and torch.equal(media_loaded, media_given)
    assert given.describe()["model"] == "in-memory/sdxl"


def test_adapter_refuses_a_pipeline_of_another_family(zoo):
    from diffusers import StableDiffusionXLPipeline

    from zeta_eval.adapters import build_adapter

    adapter = build_adapter("sd", model="in-memory/sd", dtype="float32")
    with pytest.raises(ValueError, match="runs a StableDiffusionPipeline, got a StableDiffusionXLPipeline"):
        adapter.load("cpu", pipeline=StableDiffusionXLPipeline.from_pretrained(zoo.folder("sdxl")))
    assert not adapter.loaded


def test_in_memory_adapter_loads_the_registered_pipeline(zoo):
    from diffusers import StableDiffusionXLPipeline

    from benchmarks.realscale import inmemory
    from zeta_eval.adapters import ModelLoadError

    adapter = inmemory.InMemorySDXLAdapter(model="test/not-registered", dtype="float32")
    with pytest.raises(ModelLoadError, match="no pipeline registered in this process as 'test/not-registered'"):
        adapter.load("cpu")
    pipe = StableDiffusionXLPipeline.from_pretrained(zoo.folder("sdxl"))
    name = inmemory.register("test/tiny-sdxl", pipe)
    try:
        adapter = inmemory.InMemorySDXLAdapter(model=name, dtype="float32")
        adapter.load("cpu")
        assert adapter.pipe is pipe
    finally:
        inmemory.unregister(name)


# ---------------------------------------------------------------------------------------------- end to end
# The check runs in the dtype the benchmarks choose for this CPU (benchmarks/realscale/hardware.py): bfloat16 where it
# is native, float32 where it would be emulated (an AVX2-only CPU runs bf16 matmuls at 2-5% of float32's speed: the
# bf16 check took over 15 minutes there). One family per test, both in one xdist group so that they never run at
# the same time: SDXL's peak RSS is 9 GB in bfloat16 and 17 GB in float32, SD-2.1 with the scorers 7 GB in float32.
SDXL_FLOAT32_PEAK_GB = 17.0


def available_memory_gb() -> float:
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["MemAvailable"].split()[0]) / 2**20


def run_check(tmp_path: Path, *args: str) -> dict:
    """benchmarks/realscale/check.py in its own process (one thread); its JSON."""
    out = tmp_path / "check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "realscale" / "check.py"), "--json", str(out),
                           *args], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["ok"]
    # the dtype follows the processor, and the run says which
    from benchmarks.realscale import hardware

    assert result["hardware"]["dtype"] == str(hardware.default_dtype("cpu")).removeprefix("torch.")
    assert result["hardware"]["bf16_native"] == (result["hardware"]["dtype"] == "bfloat16")
    return result


def check_family(result: dict, family: str) -> None:
    published = {"sdxl": models.published("sdxl_base_1_0"), "sd21": models.published("sd_2_1")}
    (row,) = [r for r in result["families"] if r["family"] == family]
    assert row["latents_finite"] and row["media_finite"], family
    assert row["media_shape"] == [1, 3, 256, 256]
    assert row["media_std"] > 0  # not a constant image
    assert row["nfe"] == 4  # two CFG steps
    assert row["parameters"] == published[family], family


@pytest.mark.slow
@pytest.mark.xdist_group("realscale")
def test_sd21_and_the_scorers_run_at_real_size_with_finite_outputs(tmp_path):
    """SD-2.1 at its real size (random weights), 256x256, two steps, then each real-size image scorer on the image."""
    result = run_check(tmp_path, "--families", "sd21")
    check_family(result, "sd21")
    metrics = {r["metric"]: r for r in result["metrics"]}
    assert set(metrics) == {"hpsv2", "pickscore", "image_reward", "aesthetic", "clip_score"}
    assert all(r["finite"] and len(r["scores"]) == 1 for r in metrics.values())
    assert metrics["hpsv2"]["parameters"] == metrics["pickscore"]["parameters"] == 986_109_441
    assert metrics["aesthetic"]["parameters"] == metrics["clip_score"]["parameters"] == 427_616_513


@pytest.mark.slow
@pytest.mark.xdist_group("realscale")
def test_sdxl_runs_at_real_size_with_finite_outputs(tmp_path):
    """SDXL at its real size (3.47 B parameters, random weights), 256x256, two steps."""
    from benchmarks.realscale import hardware

    if hardware.default_dtype("cpu") == torch.float32 and available_memory_gb() < SDXL_FLOAT32_PEAK_GB + 1:
        pytest.skip(f"this CPU has no native bfloat16, and SDXL in float32 needs {SDXL_FLOAT32_PEAK_GB:g} GB (+1 GB "
                    f"of headroom); {available_memory_gb():.1f} GB are available")
    check_family(run_check(tmp_path, "--families", "sdxl", "--metrics"), "sdxl")


def test_in_process_predict_benchmark_releases_the_pipeline(zoo, tmp_path):
    """After pipeline_throughput.main nothing holds the pipeline it was given (jsonargparse keeps its last parser in
    a ContextVar; without a fresh context per run the CLI, the model and the pipeline stayed referenced), so the GPU
    suite can free 7 GB of SDXL before its 24 GB section."""
    import gc
    import weakref

    from diffusers import StableDiffusionXLPipeline

    from benchmarks import pipeline_throughput
    from tiny_scorers import build_clip

    pipe = StableDiffusionXLPipeline.from_pretrained(zoo.folder("sdxl"))
    clip = build_clip(tmp_path / "clip")
    result = pipeline_throughput.main(
        ["--arch", "sdxl", "--size", "32", "--prompts", "2", "--batch", "2", "--steps", "2", "--repeats", "1",
         "--metric", "clip_score", "--dtype", "float32", "--threads", str(torch.get_num_threads())],
        pipeline=pipe, metric_options={"clip": clip})
    assert result["ratio"] > 0
    unet = weakref.ref(pipe.unet)
    del pipe
    gc.collect()
    assert unet() is None


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sd35_medium", "flux", "wan_1_3b"])
def test_sampler_overhead_runs_the_flow_architectures(arch, monkeypatch, capsys):
    """benchmarks/sampler_overhead.py --arch <flow model> end to end, with a tiny transformer of the real input
    widths standing in for the real-size one (which --arch builds through models.flow_transformer)."""
    import diffusers

    from benchmarks import sampler_overhead

    def tiny(name, dtype, device, seed=0):
        torch.manual_seed(seed)
        if name.startswith("sd_3_5"):
            net = diffusers.SD3Transformer2DModel(
                sample_size=8, patch_size=2, in_channels=16, out_channels=16, num_layers=1, attention_head_dim=8,
                num_attention_heads=2, joint_attention_dim=4096, caption_projection_dim=16, pooled_projection_dim=2048,
                pos_embed_max_size=16)
        elif name.startswith("flux"):
            net = diffusers.FluxTransformer2DModel(
                patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=8,
                num_attention_heads=2, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
                axes_dims_rope=(2, 2, 4))
        else:
            net = diffusers.WanTransformer3DModel(
                patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=16, out_channels=16,
                text_dim=4096, freq_dim=16, ffn_dim=32, num_layers=1, rope_max_seq_len=32)
        return net.eval().to(device, dtype), models.load_config(name)

    monkeypatch.setattr(models, "flow_transformer", tiny)
    assert sampler_overhead.main(["--arch", arch, "--size", "64", "--steps", "2", "--repeats", "1", "--text-tokens",
                                  "8", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "FlowMatchEulerDiscreteScheduler steps" in out and "8 text tokens" in out and "dtype torch.float32" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0] in
            ("standard", "zeta", "implicit_zigzag", "zigzag")}
    assert int(rows["standard"][1]) == int(rows["zeta"][1]) == 4 < int(rows["zigzag"][1])
