"""The adapter registry and config-time validation (no weights), and the one-line loading errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import samplers
from zeta_eval.adapters import ADAPTERS, build_adapter
from zeta_eval.adapters.base import ModelLoadError

FAMILIES = ["sd", "sdxl", "hunyuan_dit", "cogvideox", "modelscope"]
#: the flow-matching transformer families (their only scheduler is flow-matching Euler)
FLOW_FAMILIES = ["sd3", "flux", "wan"]
ALL_FAMILIES = FAMILIES + FLOW_FAMILIES
HUB_IDS = {"sd": "stabilityai/stable-diffusion-2-1", "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
           "hunyuan_dit": "Tencent-Hunyuan/HunyuanDiT-v1.2-Diffusers", "cogvideox": "THUDM/CogVideoX-2b",
           "modelscope": "ali-vilab/text-to-video-ms-1.7b", "sd3": "stabilityai/stable-diffusion-3.5-medium",
           "flux": "black-forest-labs/FLUX.1-dev", "wan": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"}


def test_registry_names_and_classes():
    assert set(ADAPTERS) == {*ALL_FAMILIES, "shapebench"}
    for name in ALL_FAMILIES:
        cls = ADAPTERS[name]
        assert cls.family == name
        assert cls.is_video == (name in ("cogvideox", "modelscope", "wan"))
    assert {n for n in ALL_FAMILIES if "seg" in ADAPTERS[n].perturbations} == {"sd", "sdxl", "modelscope"}
    assert ADAPTERS["sd"].ays_family == "sd" and ADAPTERS["sdxl"].ays_family == "sdxl"


def test_class_paths():
    assert ADAPTERS.class_path("sdxl") == "zeta_eval.adapters.sdxl.SDXLAdapter"
    assert ADAPTERS.class_path("shapebench") == "zeta_eval.adapters.shapebench.ShapeBenchAdapter"


def test_shapebench_is_registered_lazily():
    assert ADAPTERS["shapebench"].__name__ == "ShapeBenchAdapter"


def test_importing_the_registry_does_not_import_diffusers():
    code = ("import sys, zeta_eval.adapters as a; assert 'sdxl' in a.ADAPTERS and len(a.ADAPTERS.names()) == 9; "
            "print('diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip() == "False"


def test_build_adapter_checks_names_and_options():
    with pytest.raises(ValueError, match="unknown model family 'sd4'.*cogvideox"):
        build_adapter("sd4", model="x/y")
    with pytest.raises(ValueError, match="no option.*guidance"):
        build_adapter("sdxl", model="x/y", guidance=5.0)
    with pytest.raises(ValueError, match="needs option.*model"):
        build_adapter("sd")
    adapter = build_adapter("sdxl", model="x/y", unet="mhdang/dpo-sdxl-text2image-v1", vae="madebyollin/sdxl-vae-fp16-fix")
    assert adapter.unet_override == "mhdang/dpo-sdxl-text2image-v1" and adapter.unet_subfolder == "unet"
    assert not adapter.loaded


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_invalid_options_are_value_errors(family):
    model = HUB_IDS[family]
    with pytest.raises(ValueError, match="dtype"):
        build_adapter(family, model=model, dtype="float8")
    with pytest.raises(ValueError, match="scheduler"):
        build_adapter(family, model=model, scheduler="ddim" if family in FLOW_FAMILIES else "flow")
    with pytest.raises(ValueError, match="offload"):
        build_adapter(family, model=model, offload="sequential")
    with pytest.raises(ValueError, match="vae_tiling"):
        build_adapter(family, model=model, vae_tiling="yes")
    with pytest.raises(ValueError, match="height"):
        build_adapter(family, model=model, height=100)
    with pytest.raises(ValueError, match="negative_prompt"):
        build_adapter(family, model=model, negative_prompt=None)
    with pytest.raises(ValueError, match="model"):
        build_adapter(family, model="")


def test_family_specific_option_checks():
    with pytest.raises(ValueError, match="multiple of 16"):
        build_adapter("hunyuan_dit", model=HUB_IDS["hunyuan_dit"], height=1000)
    with pytest.raises(ValueError, match="attention_slicing"):
        build_adapter("hunyuan_dit", model=HUB_IDS["hunyuan_dit"], attention_slicing=True)
    with pytest.raises(ValueError, match="num_frames"):
        build_adapter("modelscope", model=HUB_IDS["modelscope"], num_frames=0)
    with pytest.raises(ValueError, match="fps"):
        build_adapter("cogvideox", model=HUB_IDS["cogvideox"], fps=2.5)
    build_adapter("sdxl", model="Lykon/dreamshaper-xl-v2-turbo", scheduler="euler")
    build_adapter("modelscope", model=HUB_IDS["modelscope"], offload="model", vae_slicing=True, attention_slicing=True)


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_check_sampler(family):
    adapter = build_adapter(family, model=HUB_IDS[family])
    for sampler in (samplers.Standard(), samplers.Zigzag(), samplers.ImplicitZigzag(), samplers.Zeta(),
                    samplers.CFGPlusPlus()):
        adapter.check_sampler(sampler)
    if family in ("sd", "sdxl", "modelscope"):
        adapter.check_sampler(samplers.SEG(blur_sigma=float("inf"), layers=["mid", "up_blocks.0"]))
        broken = samplers.SEG()
        broken.layers = [""]
        with pytest.raises(ValueError, match="layers"):
            adapter.check_sampler(broken)
    else:
        with pytest.raises(ValueError, match="does not provide"):
            adapter.check_sampler(samplers.SEG())


def test_hub_id_unreachable_offline_is_one_actionable_line(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    adapter = build_adapter("sdxl", model="no-such-org/no-such-model-zeta", dtype="float32")
    with pytest.raises(ModelLoadError) as info:
        adapter.load("cpu")
    msg = str(info.value)
    assert "\n" not in msg
    assert "no-such-org/no-such-model-zeta" in msg and "HF_HUB_OFFLINE" in msg
    assert "cache" in msg and "local folder" in msg


def test_missing_local_folder(tmp_path):
    adapter = build_adapter("sd", model=str(tmp_path / "not-there"), dtype="float32")
    with pytest.raises(ModelLoadError, match="local folder does not exist"):
        adapter.load("cpu")


def test_not_loaded_is_a_clear_error():
    adapter = build_adapter("sd", model=HUB_IDS["sd"])
    with pytest.raises(RuntimeError, match="load"):
        adapter.encode(["a cat"])
    info = adapter.describe()
    assert info["model"] == HUB_IDS["sd"] and info["family"] == "sd" and "scheduler" not in info


def test_from_pretrained_passes_component_nones_and_drops_unset_hub_options():
    from zeta_eval.adapters.pipeline_adapter import from_pretrained

    seen = {}

    class Fake:
        @classmethod
        def from_pretrained(cls, model, **kwargs):
            seen.update(kwargs, model=model)
            return cls()

    from_pretrained(Fake, "org/name", revision=None, variant=None, subfolder="unet", safety_checker=None)
    assert seen == {"model": "org/name", "subfolder": "unet", "safety_checker": None}


# ---------------------------------------------------------------------------------------------- abstract hooks
PIPELINE_PIECES = {"_encode", "_network", "_decode", "_default_size", "latent_shape"}
MODEL_HOOKS = {"load", "scheduler", "encode", "latent_shape", "denoiser", "decode"}


def test_the_hooks_a_family_implements_are_abstract_and_documented():
    from pathlib import Path

    from zeta_eval.adapters.base import ModelAdapter
    from zeta_eval.adapters.pipeline_adapter import PipelineAdapter

    assert set(ModelAdapter.__abstractmethods__) == MODEL_HOOKS
    assert set(PipelineAdapter.__abstractmethods__) == PIPELINE_PIECES
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert ("`pipeline_class` and five small pieces, `_encode`, `_network`, `_decode`, `_default_size` and "
            "`latent_shape`") in readme
    assert "the hooks `load`, `scheduler`, `encode`, `latent_shape`, `denoiser` and `decode`" in readme
    for name in ("sd", "sdxl", "hunyuan_dit", "cogvideox", "modelscope", "shapebench"):  # every family implements them
        assert not ADAPTERS[name].__abstractmethods__, name


def pipeline_family(pieces):
    from zeta_eval.adapters.pipeline_adapter import PipelineAdapter

    body = {name: lambda self, *args: None for name in pieces}
    return type("Partial", (PipelineAdapter,), {"family": "partial", "pipeline_class": "StableDiffusionPipeline", **body})


@pytest.mark.parametrize("missing", sorted(PIPELINE_PIECES))
def test_a_pipeline_family_that_lacks_a_piece_fails_at_construction_naming_it(missing):
    assert pipeline_family(PIPELINE_PIECES)("some/model").pipeline_class == "StableDiffusionPipeline"
    with pytest.raises(TypeError) as info:
        pipeline_family(PIPELINE_PIECES - {missing})("some/model")
    assert str(info.value) == (f"the Partial adapter does not implement {missing} (abstract hooks that every model "
                               "family implements)")


def test_a_model_family_that_lacks_hooks_names_every_one():
    from zeta_eval.adapters.base import ModelAdapter

    class Half(ModelAdapter):
        family = "half"

        def load(self, device):
            pass

        def encode(self, prompts):
            return prompts

    with pytest.raises(TypeError, match=r"^the Half adapter does not implement decode, denoiser, latent_shape, "
                                        r"scheduler \(abstract hooks that every model family implements\)$"):
        Half("m")


def test_a_pipeline_family_without_a_pipeline_class_is_refused():
    from zeta_eval.adapters.sd import SDAdapter

    with pytest.raises(TypeError, match="the NoPipe adapter sets no pipeline_class"):
        type("NoPipe", (SDAdapter,), {"pipeline_class": ""})("m")
