"""model.compile (issue 12): torch.compile of the denoising network gives the eager results within floating-point
tolerance, keeps its compile time out of the seconds per sample, and is refused where it would be wrong."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from datamodules.records import PromptRecord
from samplers import SEG, Standard, Zeta
from tiny_models import ADAPTER_OPTIONS, TinyZoo, run_adapter
from toy_adapter import ToyAdapter
from toy_metric import Brightness
from zeta_eval.adapters import build_adapter
from zeta_eval.module import SamplingEvaluation, compile_options

ROOT = Path(__file__).resolve().parents[1]
CHILD = "ZETA_EVAL_INDUCTOR_CHILD"  # set in the process that runs the inductor test itself
PROMPTS = ["a red cube on a table", "two dogs", "a painting of the sea", "a tree", "a boat at night"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return TinyZoo(tmp_path_factory.mktemp("zoo"))


def fresh_adapter(zoo, family: str = "sd", **options):
    """An adapter of its own (the zoo's are shared by tests; compiling one must not change the others)."""
    adapter = build_adapter(family, model=zoo.folder(family), dtype="float32", **ADAPTER_OPTIONS[family], **options)
    adapter.load("cpu")
    return adapter


def evaluate(adapter, compile, batches) -> list[dict]:
    module = SamplingEvaluation(adapter=adapter, samplers=[Standard(), Zeta(warmup_steps=1)], steps=4,
                                metrics=[Brightness()], save_media=False, compile=compile)
    module.setup("predict")
    records = [PromptRecord("t", str(k), p, seed=10 + k) for k, p in enumerate(PROMPTS)]
    rows, start = [], 0
    for size in batches:
        rows.append(module.predict_step(records[start:start + size]))
        start += size
    return rows


def test_compile_options_accept_a_flag_a_mode_or_a_mapping():
    assert compile_options(False) is None and compile_options(None) is None
    assert compile_options(True) == {"mode": "default", "backend": "inductor", "channels_last": None}
    assert compile_options("max-autotune-no-cudagraphs") == {"mode": "max-autotune-no-cudagraphs",
                                                             "backend": "inductor", "channels_last": None}
    assert compile_options({"backend": "eager", "channels_last": True}) == {"mode": "default", "backend": "eager",
                                                                           "channels_last": True}
    for bad, needle in (("fast", "mode must be one of"), ({"mode": "fast"}, "mode must be one of"),
                        ({"modes": "default"}, "a mapping with mode"), ({"channels_last": "yes"}, "channels_last"),
                        (3, "must be true, false"), ({"backend": ""}, "backend")):
        with pytest.raises(ValueError, match=needle):
            compile_options(bad)


def test_compile_is_refused_where_it_would_be_wrong(zoo):
    # dynamo does not see hooks added after compilation: SEG's perturbed branch would silently be the cond branch
    with pytest.raises(ValueError, match="perturbed branch hooks the network.s attention"):
        SamplingEvaluation(adapter=build_adapter("sd", model=zoo.folder("sd"), dtype="float32"), samplers=[SEG()],
                           compile=True)
    with pytest.raises(ValueError, match="toy adapter does not expose a denoising network"):
        SamplingEvaluation(adapter=ToyAdapter(), samplers=[Standard()], compile=True)
    with pytest.raises(ValueError, match="offload: model"):
        SamplingEvaluation(adapter=build_adapter("sd", model=zoo.folder("sd"), dtype="float32", offload="model"),
                           samplers=[Standard()], compile=True)
    with pytest.raises(ValueError, match="unknown backend 'no_such_backend'.*inductor"):
        fresh_adapter(zoo).compile_network(backend="no_such_backend")


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_a_compiled_network_gives_the_eager_latents_and_leaves_the_pipeline_eager(zoo, family):
    adapter = fresh_adapter(zoo, family)
    sampler = Zeta(warmup_steps=1)
    eager, _, _ = run_adapter(adapter, sampler, PROMPTS[:2], [1, 2], 4)
    assert adapter.compile_network(backend="eager") == {"mode": "default", "backend": "eager",
                                                        "channels_last": False}  # channels_last: CUDA only
    assert adapter.compute_network is not adapter.network
    compiled, _, _ = run_adapter(adapter, sampler, PROMPTS[:2], [1, 2], 4)
    assert torch.allclose(compiled, eager, atol=1e-5, rtol=0)
    assert type(adapter.pipe.unet).__name__ == "UNet2DConditionModel"  # the pipeline's own network is untouched
    adapter.load("cpu")  # reloading drops the compiled network with the old weights
    assert adapter.compute_network is adapter.network


def test_compile_time_is_kept_apart_and_results_and_ids_do_not_change(zoo):
    batches = [2, 2, 1]  # the second batch has the first one's shape: nothing is compiled for it
    eager = evaluate(fresh_adapter(zoo), False, batches)
    compiled = evaluate(fresh_adapter(zoo), {"backend": "eager"}, batches)
    flat_eager = [r for batch in eager for r in batch]
    flat_compiled = [r for batch in compiled for r in batch]
    assert [r["sample_id"] for r in flat_compiled] == [r["sample_id"] for r in flat_eager]  # not part of the identity
    assert [r["nfe"] for r in flat_compiled] == [r["nfe"] for r in flat_eager]  # the warm-up call is not an NFE
    for a, b in zip(flat_compiled, flat_eager):
        assert abs(a["brightness"] - b["brightness"]) < 1e-6
    assert all(r["compile_seconds"] is None for r in flat_eager)
    first, repeat, smaller = compiled
    standard = [r for r in first if r["sampler"] == "standard"]
    assert all(r["compile_seconds"] > 0 for r in standard)  # batch of 2: compiled at its first call
    assert all(r["compile_seconds"] == 0.0 for r in repeat)  # same shapes: no compilation, nothing excluded
    assert all(r["compile_seconds"] > 0 for r in smaller if r["sampler"] == "standard")  # a new batch shape
    assert all(r["seconds"] > 0 for batch in compiled for r in batch)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="no C compiler: inductor cannot build CPU kernels here (the eager-backend tests cover the "
                           "wiring)")
def test_inductor_on_cpu_matches_eager_within_tolerance(zoo, tmp_path):
    """Run in a process of its own, with an inductor cache of its own: inductor's generated CPU code has crashed
    (SIGSEGV in a generated kernel, torch 2.x on an AVX-512 machine), and a crash inside a pytest-xdist worker with
    --dist loadgroup left the whole session waiting forever. A crash here fails this test, by its signal."""
    if os.environ.get(CHILD) != "1":
        env = {**os.environ, CHILD: "1", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
               "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                               f"{__file__}::test_inductor_on_cpu_matches_eager_within_tolerance"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=870)
        what = f"crashed (signal {-done.returncode})" if done.returncode < 0 else "failed"
        assert done.returncode == 0, f"inductor on CPU {what}:\n" + (done.stdout + done.stderr)[-3000:]
        return
    adapter = fresh_adapter(zoo, "sd")
    sampler = Standard()
    eager_latents, eager_media, _ = run_adapter(adapter, sampler, PROMPTS[:2], [3, 4], 4)
    adapter.compile_network()  # inductor, mode default
    latents, media, _ = run_adapter(adapter, sampler, PROMPTS[:2], [3, 4], 4)
    assert torch.allclose(latents, eager_latents, atol=1e-4, rtol=0), (latents - eager_latents).abs().max()
    assert torch.allclose(media, eager_media, atol=1e-4, rtol=0)
