"""``prepare`` and ``validate``'s file check (issue 23, item 3), against a stand-in hub: local folders served over
HTTP on 127.0.0.1 (tests/hub_standin.py) and named by ``HF_ENDPOINT``, with every cache in a temporary folder.

The end-to-end test runs the commands as a user would, each in its own process (the hub libraries read
``HF_ENDPOINT``, ``HF_HOME`` and ``HF_HUB_OFFLINE`` when imported): offline ``validate`` names each missing piece,
``prepare --to CACHE`` fetches the tiny SDXL pipeline, the prompt file and the CLIP scorer, then offline ``validate``
says everything is present and offline ``predict`` runs with the printed command's environment.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zeta_eval import prepare

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def test_verify_hub_blobs_flags_a_blob_whose_content_is_not_its_name(tmp_path):
    import hashlib

    blobs = tmp_path / "models--a--b" / "blobs"
    blobs.mkdir(parents=True)
    good, bad = b"weights", b"damaged"
    (blobs / hashlib.sha256(good).hexdigest()).write_bytes(good)
    (blobs / hashlib.sha256(good).hexdigest()[::-1]).write_bytes(bad)
    (blobs / ("f" * 40)).write_bytes(b"a git blob id: not a SHA-256, not checked")
    found = prepare.verify_hub_blobs(sorted(str(p) for p in blobs.iterdir()))
    assert len(found) == 1 and hashlib.sha256(good).hexdigest()[::-1] in found[0]


def test_offline_command_sets_the_offline_switches_and_the_cache(tmp_path):
    command = prepare.offline_command(["--config", "my exp.yaml", "--model.steps", "4"], str(tmp_path / "c"))
    assert command == (f"HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME={tmp_path}/c "
                       f"TORCH_HOME={tmp_path}/c/torch python -m zeta_eval predict --config 'my exp.yaml' "
                       "--model.steps 4")
    assert prepare.offline_command(["--config", "x.yaml"], None).startswith("HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "
                                                                            "TRANSFORMERS_OFFLINE=1 python -m")


def test_weight_options_are_the_options_that_name_weights(tmp_path):
    from metrics import build_metric

    head = tmp_path / "head.pth"
    head.write_bytes(b"x")
    aesthetic = build_metric("aesthetic", clip="owner/clip", head=str(head))
    assert prepare.weight_options(aesthetic) == [("clip", "owner/clip"), ("head", str(head))]
    hps = build_metric("hpsv2")
    assert [o for o, _ in prepare.weight_options(hps)] == ["checkpoint"]  # not its architecture name
    missing = build_metric("aesthetic", clip=str(tmp_path), head="nowhere.pth")
    assert "head nowhere.pth: no such file" in prepare._weights_present(missing)


# ---------------------------------------------------------------------------------------------- end to end
def _env(hub_url: str, home: Path, offline: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "TORCH_HOME"))}
    env.update(HF_ENDPOINT=hub_url, HF_HOME=str(home), TORCH_HOME=str(home / "torch"), PYTHONPATH=f"{ROOT}:{TESTS}",
               OMP_NUM_THREADS="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_XET="1",
               HF_HUB_OFFLINE="1" if offline else "0", HF_DATASETS_OFFLINE="1" if offline else "0",
               TRANSFORMERS_OFFLINE="1" if offline else "0")
    return env


def _zeta(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zeta_eval", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def hub_repos(tmp_path_factory):
    from tiny_models import build_sdxl
    from tiny_scorers import build_clip

    root = tmp_path_factory.mktemp("hub")
    prompts = root / "prompts"
    prompts.mkdir()
    (prompts / "prompts.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n"
                                                   for i, p in enumerate(["a red cube", "two dogs", "a boat"])))
    return {"models/tiny/sdxl": Path(build_sdxl(root / "sdxl")), "models/tiny/clip": Path(build_clip(root / "clip")),
            "datasets/tiny/prompts": prompts}


def _experiment(folder: Path) -> Path:
    cfg = {"model": {"adapter": {"name": "sdxl", "model": "tiny/sdxl"}, "steps": 2, "samplers": ["standard"],
                     "metrics": [{"name": "clip_score", "clip": "tiny/clip"}]},
           "data": {"source": {"hub": "tiny/prompts", "files": ["prompts.jsonl"]}, "batch_size": 3}}
    path = folder / "tiny_hub.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_prepare_then_validate_and_predict_offline(hub_repos, tmp_path):
    from hub_standin import HubStandIn

    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    config = _experiment(work)
    with HubStandIn(hub_repos) as hub:
        # offline, nothing cached: the prompt set cannot be read, one line
        done = _zeta(["validate", "--config", config.name], _env(hub.url, cache, offline=True), work)
        assert done.returncode == 2 and "tiny/prompts" in done.stderr.strip().splitlines()[-1], done.stderr[-2000:]
        assert not hub.requests

        done = _zeta(["prepare", "--config", config.name, "--to", cache], _env(hub.url, tmp_path / "elsewhere",
                                                                               offline=False), work)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        lines = done.stdout.strip().splitlines()
        model = next(line for line in lines if line.startswith("model"))
        scorer = next(line for line in lines if line.startswith("scorer"))
        prompts = next(line for line in lines if line.startswith("prompts"))
        assert "tiny/sdxl" in model and "fetched" in model and "tiny/clip" in scorer and "fetched" in scorer
        size = (hub_repos["datasets/tiny/prompts"] / "prompts.jsonl").stat().st_size
        assert prompts == f"prompts   tiny/prompts (hub): fetched 1 file, {size} B"
        total = next(line for line in lines if line.startswith("total"))
        assert str(cache) in total and "checked against their SHA-256" in total
        command = lines[-1].strip()
        assert command.startswith("HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "
                                  f"HF_HOME={cache} TORCH_HOME={cache}/torch python -m zeta_eval predict --config "
                                  f"{config.name}")
        assert any("/resolve/" in r and "unet/diffusion_pytorch_model.safetensors" in r for r in hub.requests)
        assert (cache / "hub" / "models--tiny--sdxl").is_dir() and (cache / "hub" / "models--tiny--clip").is_dir()
        asked = len(hub.requests)

        # offline, from the prepared cache: everything present, and the printed command runs
        offline = _env(hub.url, cache, offline=True)
        done = _zeta(["validate", "--config", config.name], offline, work)
        assert done.returncode == 0 and "everything present" in done.stdout, done.stdout[-2000:] + done.stderr
        words = shlex.split(command)
        env = {**offline, **dict(w.split("=", 1) for w in words[:5])}
        done = _zeta(words[8:] + ["--output_dir", str(work / "out")], env, work)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        import pyarrow.parquet as pq

        rows = pq.read_table(work / "out" / "parts").to_pylist()
        assert len(rows) == 3 and all(r["clip_score"] is not None for r in rows)
        assert len(hub.requests) == asked  # nothing went to the hub offline

    # a cache that lacks the scorer: validate names it, one line, and says what to run
    import shutil

    shutil.rmtree(cache / "hub" / "models--tiny--clip")
    done = _zeta(["validate", "--config", config.name], _env("http://127.0.0.1:9", cache, offline=True), work)
    missing = [line for line in done.stdout.splitlines() if line.startswith("missing")]
    assert done.returncode == 0 and missing == [
        f"missing     scorer clip_score (tiny/clip): clip tiny/clip: not in the hub cache ({cache / 'hub'})"]
    assert f"prepare --config {config.name}" in done.stdout.splitlines()[-1]


@pytest.mark.slow
def test_prepare_refuses_a_download_that_does_not_match_its_hash(hub_repos, tmp_path):
    from hub_standin import HubStandIn

    config = _experiment(tmp_path)
    with HubStandIn(hub_repos) as hub:
        hub.corrupt.add("unet/diffusion_pytorch_model.safetensors")
        done = _zeta(["prepare", "--config", config.name], _env(hub.url, tmp_path / "cache", offline=False), tmp_path)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "do not match their hash" in err[-1] and "SHA-256" in err[-1]


def test_prepare_refuses_to_run_offline(tmp_path, capsys, monkeypatch):
    from zeta_eval.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(prepare, "hub_offline", lambda: True)
    capsys.readouterr()
    assert main(["prepare", "--config", "shapebench_smoke.yaml"]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


def test_scorers_of_a_run_without_scoring_are_fetched_but_not_required(tmp_path):
    """``score: false`` (the 24 GB workflow scores later): predict loads no scorer, so validate does not ask for their
    weights, but prepare fetches them for the later ``score``."""
    from types import SimpleNamespace

    from metrics import build_metric

    metric = build_metric("clip_score", clip="owner/not-cached-clip")
    source = SimpleNamespace(prompt_set="mine", kind="local", rows=lambda: iter(()))
    cli = SimpleNamespace(model=SimpleNamespace(adapter=SimpleNamespace(model=str(tmp_path), family="sdxl"),
                                                metric_list=[metric], score_enabled=False),
                          datamodule=SimpleNamespace(source=source))
    assert [p.kind for p in prepare.experiment_pieces(cli)] == ["model", "prompts"]
    assert prepare.missing_pieces(cli) == []
    assert [p.kind for p in prepare.experiment_pieces(cli, all_scorers=True)] == ["model", "prompts", "scorer"]
    (piece, why), = prepare.missing_pieces(cli, all_scorers=True)
    assert piece.name == "clip_score (owner/not-cached-clip)" and why.startswith("clip owner/not-cached-clip: not in")
    cli.model.score_enabled = True
    assert [p.kind for p, _ in prepare.missing_pieces(cli)] == ["scorer"]
