"""Size and load time of the HTML report on a run the size of the ShapeBench study (20,160 samples).

    python benchmarks/html_report_load.py [--out /tmp/html_bench] [--settings 14] [--items 1440] [--no-media]
                                          [--metrics 1]

Synthesises the run (running the study itself costs an hour): the study's experiment.json (14 sampler settings,
2,880 items planned), 720 ShapeBench prompts x 2 seeds = 1,440 items per setting, a 0/1 score correlated within an
item (about 77% right), one 32x32 PNG per sample, written as Parquet parts of 48 rows like ``predict`` writes them.
Then ``report`` (timed) and the page in the system Chromium via Playwright: the time from navigation to the first
drawn view (the Results table), from a click on each other tab until the view is in the page (``*_shown_ms``, as
Playwright sees it), and the page's own time to build each view (``*_built_ms``); the share of report_data.js that
Compare's precomputed pair statistics take (``compare_bytes``: every unordered pair x metric x (all items + each
category)), the time the report spends computing them (``compare_data_s``), and the time from choosing another
sampler A in Compare until its table and cards are drawn (``compare_pair_ms``). ``--metrics 3`` adds two more
continuous scores per sample (a run with several metrics). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthesise(out: Path, settings: int, items: int, media: bool, metrics: int = 1) -> int:
    from PIL import Image

    from zeta_eval.parts import write_part
    from zeta_eval.schema import null_row
    from datamodules.shapebench.prompts import evaluation_set

    experiment = json.loads((ROOT / "docs/results/shapebench/v1/experiment.json").read_text())
    base = experiment["samplers"]
    # more settings than the study's 14: its settings again under new keys and labels
    experiment["samplers"] = [base[k] if k < len(base) else
                              {**base[k % len(base)], "key": f"{base[k % len(base)]['key']}-r{k}",
                               "label": f"{base[k % len(base)]['label']} (r{k})"} for k in range(settings)]
    out.mkdir(parents=True)
    (out / "experiment.json").write_text(json.dumps(experiment))
    shutil.copy(ROOT / "docs/results/shapebench/v1/config.yaml", out / "config.yaml")
    prompts = evaluation_set("full")
    keys = [(prompts[k % len(prompts)], k // len(prompts)) for k in range(items)]  # seed-major like the study
    rng = np.random.default_rng(0)
    easy = rng.uniform(0.3, 1.0, size=items)  # per-item difficulty: samplers agree on most items
    versions = json.dumps({"torch": "2.x", "zeta_eval": "0.1.0"})
    extra = [f"score{i}" for i in range(1, metrics)]
    conventions = json.dumps({"shapebench": {"oracle": "synthetic"}, **{m: {} for m in extra}})
    created = dt.datetime.now(dt.timezone.utc)
    written = 0
    for s, spec in enumerate(experiment["samplers"]):
        folder = Path("media") / spec["key"] / "shapebench"
        if media:
            (out / folder).mkdir(parents=True)
        rows = []
        for k, (item, seed_index) in enumerate(keys):
            seed = item["seed"] + seed_index
            stem = f"{item['id'].replace('/', '_')}_seed{seed}"
            path = (folder / f"{stem}.png").as_posix()
            if media:
                colour = tuple(int(c) for c in rng.integers(0, 255, size=3))
                Image.new("RGB", (32, 32), colour).save(out / path)
            rows.append({
                **null_row(), "prompt_truncated": False, "model_key": "shapebench-key", "family": "shapebench",
                "model_config": "{}", "weights_sha256": "{}",
                "sample_id": f"{spec['key']}-{k}", "prompt_set": "shapebench", "prompt_id": item["id"],
                "prompt": item["prompt"], "seed": seed, "sample_index": seed_index, "metadata": json.dumps(item),
                "category": item["tag"], "model": "shapebench", "sampler": spec["key"].split("-")[0],
                "sampler_label": spec["label"], "sampler_key": spec["key"], "sampler_index": s,
                "sampler_params": json.dumps(spec["params"]), "steps": spec["steps"], "schedule": '"default"',
                "gamma1": 3.0, "gamma2": 0.0, "gamma_eff": 6.0, "nfe": spec["nfe"], "seconds": 0.3 + 0.01 * s,
                "decode_seconds": 0.001, "peak_memory_mb": None, "media_path": path, "media_strip_path": None,
                "nonfinite": False, "status": "ok", "shapebench": float(rng.uniform() < easy[k] + 0.05),
                "shapebench_reason": 0, "metric_conventions": conventions, "rank": k % 2, "world_size": 2,
                "array_task": seed_index, "array_tasks": 4, "host": "bench", "versions": versions,
                "created_at": created, **{m: float(rng.normal(easy[k], 0.1)) for m in extra},
            })
            if len(rows) == 48:
                write_part(rows, out, f"part-bench-s{s:02d}-b{k:06d}")
                written += len(rows)
                rows = []
        if rows:
            write_part(rows, out, f"part-bench-s{s:02d}-end")
            written += len(rows)
    return written


def load_times(out: Path, media: bool = True) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on PATH (apt-get install chromium)")
    times: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "index.html").as_uri())
        page.wait_for_selector("body[data-ready=true]")
        times["results_ready_ms"] = page.evaluate("window.ZETA_READY_MS")  # since navigation start
        for view, ready in (("compare", "#cmp-cards"), ("gallery", "#gallery-table"), ("run", "#config-text")):
            t0 = page.evaluate("performance.now()")
            page.click(f"#tabs a[data-view={view}]")
            page.wait_for_selector(f"#view-{view} {ready}")
            times[f"{view}_shown_ms"] = page.evaluate("performance.now()") - t0  # click to view in the DOM
        times.update({f"{view}_built_ms": ms for view, ms in page.evaluate("window.ZETA_VIEW_MS").items()})
        t0 = page.evaluate("performance.now()")
        page.click("#tabs a[data-view=compare]")
        page.select_option("#cmp-filter", "differ")
        page.wait_for_selector("#cmp-cards")
        times["compare_refilter_ms"] = page.evaluate("performance.now()") - t0
        t0 = page.evaluate("performance.now()")
        page.select_option("#cmp-a", "1")
        page.wait_for_selector("#cmp-stats")
        times["compare_pair_ms"] = page.evaluate("performance.now()") - t0
        browser.close()
    if not media:  # without media the page shows "media not in this folder" after the browser's failed loads
        errors = [e for e in errors if "ERR_FILE_NOT_FOUND" not in e]
    if errors:
        raise SystemExit(f"console errors: {errors[:3]}")
    return times


def _plain(obj):
    from zeta_eval.html_report import _plain as plain

    return plain(obj)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="/tmp/zeta_eval_html_bench")
    ap.add_argument("--settings", type=int, default=14)
    ap.add_argument("--items", type=int, default=1440)
    ap.add_argument("--no-media", action="store_true")
    ap.add_argument("--metrics", type=int, default=1, help="scores per sample (shapebench, then continuous ones)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    samples = synthesise(out, args.settings, args.items, media=not args.no_media, metrics=args.metrics)
    synth = time.perf_counter() - t0

    from zeta_eval.report import write_report

    t0 = time.perf_counter()
    write_report(out)
    report_s = time.perf_counter() - t0
    from zeta_eval.html_report import compare_data, report_data
    from zeta_eval.results import build, summary_rows

    rep = build(out)
    data = report_data(rep, summary_rows(rep), out)
    t0 = time.perf_counter()
    rows_items = [np.array(s["item"]) for s in data["settings"]]
    compare_data(rep, data["items"], rows_items)
    compare_s = time.perf_counter() - t0
    result = {"samples": samples, "settings": args.settings, "metrics": args.metrics,
              "synthesis_s": round(synth, 1), "report_s": round(report_s, 2),
              "report_data_js_bytes": (out / "report_data.js").stat().st_size,
              "compare_bytes": len(json.dumps(_plain(data["compare"]), separators=(",", ":"))),
              "compare_data_s": round(compare_s, 2), "index_html_bytes": (out / "index.html").stat().st_size}
    result.update({k: round(v, 1) for k, v in load_times(out, media=not args.no_media).items()})
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
