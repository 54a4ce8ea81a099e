"""The HTML report (index.html + report_data.js): its data against samples.parquet, and the page in a real browser.

The browser tests drive Debian's ``chromium`` with Playwright (``executable_path``: Playwright's own browser download
is not used). Without both they are skipped with one reason. Screenshots of every view are saved under the test's
temporary folder (printed with ``-s``) for inspection.
"""

import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path

import markupsafe
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from zeta_eval import stats
from zeta_eval.cli import main
from zeta_eval.html_report import PAIR_FIELDS, bounds, completeness, render_page
from rows import full_row
from zeta_eval.parts import list_parts, write_part
from zeta_eval.report import write_report
from zeta_eval.results import ReportError, build

CHROMIUM = os.environ.get("ZETA_EVAL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
try:
    import playwright.sync_api  # noqa: F401

    PLAYWRIGHT = True
except ImportError:
    PLAYWRIGHT = False
_NO_BROWSER = pytest.mark.skipif(
    CHROMIUM is None or not PLAYWRIGHT,
    reason="browser tests need the system Chromium (apt-get install chromium; .ci/run installs it) and the "
           "playwright package (pip install -e '.[test]')")


def browser(test):
    return pytest.mark.browser(_NO_BROWSER(test))

# standard vs zeta with warm-up 1 on the 48 demo items: at 10 steps they disagree on a few items in both directions
# (standard at γ_eff makes a third column; about 40 s on one CPU thread)
SHAPEBENCH = {
    "model": {"adapter": {"name": "shapebench"}, "steps": 10,
              "samplers": [{"name": "standard", "gamma1": 3.0}, {"name": "standard", "gamma1": 6.0},
                           {"name": "zeta", "gamma1": 3.0, "warmup_steps": 1}],
              "metrics": ["shapebench"]},
    "data": {"source": "shapebench", "subset": "demo", "batch_size": 24},
    "trainer": {"accelerator": "cpu", "enable_progress_bar": False},
}


def read_data(out: Path) -> dict:
    text = (out / "report_data.js").read_text(encoding="utf-8")
    prefix = "window.ZETA_REPORT = "
    assert text.startswith(prefix) and text.endswith(";\n")
    return json.loads(text[len(prefix):-2])


def samples(out: Path) -> list[dict]:
    return pq.read_table(out / "samples.parquet").to_pylist()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    from test_pipeline import write_experiment

    tmp = tmp_path_factory.mktemp("toy")
    cfg = write_experiment(tmp)
    out = tmp / "out"
    assert main(["predict", "--config", str(cfg), "--output_dir", str(out)]) == 0
    return out


# ---------------------------------------------------------------------------------------------- the data
def test_report_writes_a_page_and_data_that_match_samples_parquet(toy_run):
    out = toy_run
    data = read_data(out)
    rows = samples(out)
    items = data["items"]
    seen = 0
    for s in data["settings"]:
        mine = {(r["prompt_set"], r["prompt_id"], r["seed"], r["sample_index"]): r for r in rows
                if r["sampler_key"] == s["key"]}
        assert len(s["item"]) == len(mine)
        for j, it in enumerate(s["item"]):
            key = (items["prompt_sets"][items["set"][it]], items["id"][it], items["seed"][it], items["index"][it])
            row = mine[key]
            assert items["prompts"][items["prompt"][it]] == row["prompt"]
            assert items["category_names"][items["category"][it]] == row["category"]
            assert s["dir"] + s["media"][j] == row["media_path"]
            assert s["values"]["brightness"][j] == pytest.approx(row["brightness"])
            assert (out / (s["dir"] + s["media"][j])).is_file()
            seen += 1
    assert seen == len(rows) == 25
    summary = {r["sampler_label"]: r for r in _csv(out / "summary.csv")}
    for entry in data["summary"]:
        label = data["settings"][entry["setting"]]["label"]
        cell = entry["metrics"]["brightness"]
        assert cell["mean"] == pytest.approx(float(summary[label]["brightness_mean"]))
        assert entry["nfe"] == pytest.approx(float(summary[label]["nfe"]))
    assert data["settings"][data["baseline"]]["label"] == "standard γ=5.5"
    # per category: the category's own mean of each setting
    for cat, entries in data["category_summary"].items():
        for entry in entries:
            key = data["settings"][entry["setting"]]["key"]
            values = [r["brightness"] for r in rows if r["sampler_key"] == key and r["category"] == cat]
            assert entry["metrics"]["brightness"]["mean"] == pytest.approx(sum(values) / len(values))
            assert entry["metrics"]["brightness"]["n"] == len(values)


def test_the_page_loads_nothing_from_the_network_and_holds_no_run_data(toy_run):
    page = (toy_run / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", page, re.I)  # no CDN, no remote anything
    assert re.findall(r"<script[^>]*src=\"([^\"]+)\"", page) == ["report_data.js"]
    assert "<link" not in page
    assert "brightness" not in page  # the data lives in report_data.js only
    assert render_page("a <b> name").count("a &lt;b&gt; name") == 2  # title and heading, escaped


def test_bounds_are_the_reports_lo_hi():
    assert bounds({"m_mean": 0.5, "m_lo": 0.2, "m_hi": 0.9}, "m") == (0.2, 0.9)
    assert bounds({"m_delta": -0.25, "m_delta_lo": -0.75, "m_delta_hi": 0.0}, "m_delta") == (-0.75, 0.0)
    lo, hi = bounds({"m_mean": 0.5}, "m")  # no interval (n < 2): NaN bounds, drawn as none
    assert lo != lo and hi != hi


def test_completeness_counts_the_samples_the_experiment_plans(toy_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(toy_run, out)
    full = completeness(build(out))
    assert (full["expected"], full["present"], full["items"]) == (25, 25, 5)
    assert [s["present"] for s in full["settings"]] == [5] * 5
    removed = 0
    for part in list_parts(out)[:2]:
        removed += pq.read_metadata(part).num_rows
        part.unlink()
    c = completeness(build(out))
    assert c["expected"] == 25 and c["present"] == 25 - removed > 0
    assert sum(s["expected"] - s["present"] for s in c["settings"]) == removed


# ---------------------------------------------------------------------------------------------- the browser
@pytest.fixture(scope="module")
def shapebench_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shapebench")
    cfg = tmp / "shapebench_html.yaml"
    cfg.write_text(yaml.safe_dump(SHAPEBENCH, allow_unicode=True))
    out = tmp / "out"
    assert main(["predict", "--config", str(cfg), "--output_dir", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"\nscreenshots of the HTML report: {folder}")
    return folder


class Page:
    """A page of the report with every console error and failed request recorded."""

    def __init__(self, chromium, out: Path):
        self.page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))
        self.page.goto((out / "index.html").as_uri())
        self.page.wait_for_selector("body[data-ready=true]")

    def view(self, name: str):
        self.page.click(f"#tabs a[data-view={name}]")
        self.page.wait_for_selector(f"#view-{name}:not([hidden])")
        return self.page

    def images_loaded(self, selector: str) -> None:
        """Every image of ``selector`` has loaded (the page loads images lazily: the viewport is made as tall as
        the page meanwhile, which also leaves it so for a full-page screenshot)."""
        height = self.page.evaluate("document.documentElement.scrollHeight")
        self.page.set_viewport_size({"width": 1400, "height": max(1000, height)})
        self.page.wait_for_function(
            "sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)", arg=selector)


@pytest.fixture
def report_page(chromium, shapebench_run):
    page = Page(chromium, shapebench_run)
    yield page
    page.page.close()


@browser
def test_every_view_draws_without_a_console_error(report_page, shapebench_run, screenshots):
    data = read_data(shapebench_run)
    page = report_page.page
    for name in ("results", "compare", "gallery", "run"):
        report_page.view(name)
        report_page.images_loaded(f"#view-{name} img")
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
    assert report_page.errors == []
    assert page.locator("#summary-table tbody tr").count() == len(data["settings"]) == 3
    assert page.locator("#view-run img.figure").count() == len(data["run"]["figures"]) >= 2
    assert "shapebench" in page.locator("#config-text").inner_text()
    assert page.locator("#incomplete").count() == 0  # the run is complete


def _labels(page, table: str) -> list[str]:
    return [t.strip() for t in page.locator(f"{table} tbody tr td:first-child").all_inner_texts()]


@browser
def test_sorting_a_column_orders_the_rows_by_its_values(report_page, shapebench_run):
    page = report_page.page
    summary = _csv(shapebench_run / "summary.csv")
    for header, column in (("s/sample", "seconds_per_sample"), ("NFE", "nfe"), ("shapebench ×100 ↑", "shapebench_mean")):
        th = page.locator("#summary-table th", has_text=header).first
        for _ in range(2):  # descending, then ascending; ties keep the table's order
            th.click()
            descending = th.get_attribute("aria-sort") == "descending"
            values = [float(r[column]) for r in summary]
            order = sorted(range(len(summary)), key=lambda k: -values[k] if descending else values[k])
            assert _labels(page, "#summary-table") == [summary[k]["sampler_label"] for k in order], (header, descending)
    assert report_page.errors == []


def _cards(page) -> dict[tuple[str, int], tuple[str, str]]:
    out = {}
    for card in page.locator("#cmp-cards .card").all():
        key = (card.get_attribute("data-prompt-id"), int(card.get_attribute("data-seed")))
        out[key] = (card.locator("[data-side=a] img").get_attribute("src"),
                    card.locator("[data-side=b] img").get_attribute("src"))
    return out


@browser
def test_compare_filtered_to_wins_shows_exactly_the_items_whose_oracle_results_differ(report_page, shapebench_run,
                                                                                      screenshots):
    rows = samples(shapebench_run)
    by = {}
    for r in rows:
        by.setdefault((r["sampler"], r["gamma1"]), {})[(r["prompt_id"], r["seed"])] = r
    standard, zeta = by[("standard", 3.0)], by[("zeta", 3.0)]
    a_wins = {k for k in standard if standard[k]["shapebench"] > zeta[k]["shapebench"]}
    b_wins = {k for k in standard if standard[k]["shapebench"] < zeta[k]["shapebench"]}
    assert a_wins and b_wins  # the configuration is chosen so that both happen

    page = report_page.view("compare")
    page.select_option("#cmp-a", label=standard[next(iter(standard))]["sampler_label"])
    page.select_option("#cmp-b", label=zeta[next(iter(zeta))]["sampler_label"])
    for choice, expected in (("a", a_wins), ("b", b_wins), ("differ", a_wins | b_wins)):
        page.select_option("#cmp-filter", choice)
        cards = _cards(page)
        assert set(cards) == expected, choice
        for key, (src_a, src_b) in cards.items():  # the right two images, side by side
            assert (src_a, src_b) == (standard[key]["media_path"], zeta[key]["media_path"])
        report_page.images_loaded("#cmp-cards img")
    page.screenshot(path=str(screenshots / "compare_differ.png"), full_page=True)
    # every item, sorted by A - B, largest first, 24 a page: A's wins open the first page, B's close the last
    page.select_option("#cmp-filter", "all")
    assert f"Showing {len(standard)}," in page.locator("#cmp-summary").inner_text()
    order = []
    while True:
        order += [(c.get_attribute("data-prompt-id"), int(c.get_attribute("data-seed")))
                  for c in page.locator("#cmp-cards .card").all()]
        if page.locator(".pager .next").first.is_disabled():
            break
        page.locator(".pager .next").first.click()
    assert sorted(order) == sorted(standard)
    assert set(order[: len(a_wins)]) == a_wins and set(order[-len(b_wins):]) == b_wins
    # a category filter keeps only that category's items
    category = standard[next(iter(a_wins))]["category"]
    page.select_option("#cmp-filter", "differ")
    page.select_option("#cmp-category", label=category)
    assert set(_cards(page)) == {k for k in a_wins | b_wins if standard[k]["category"] == category}
    assert report_page.errors == []


@browser
def test_gallery_filters_by_text_and_category(report_page, shapebench_run):
    rows = samples(shapebench_run)
    items = {(r["prompt_id"], r["seed"]): r for r in rows}
    page = report_page.view("gallery")
    assert f"({len(items)} items)" in page.locator("#gal-body .page-info").first.inner_text()
    assert page.locator("#gallery-table tbody tr").count() == min(20, len(items))
    assert page.locator("#gallery-table tbody tr").first.locator("td.cell").count() == 3  # one per sampler
    page.fill("#gal-text", "TRIANGLE")
    expected = [k for k, r in items.items() if "triangle" in r["prompt"].lower()]
    assert 0 < len(expected) < len(items)
    assert f"({len(expected)} items)" in page.locator("#gal-body .page-info").first.inner_text()
    shown = page.locator("#gallery-table tbody td.prompt").all_inner_texts()
    assert len(shown) == min(20, len(expected)) and all("triangle" in t.lower() for t in shown)
    page.fill("#gal-text", "")
    page.select_option("#gal-category", label="counting")
    counting = [k for k, r in items.items() if r["category"] == "counting"]
    assert f"({len(counting)} items)" in page.locator("#gal-body .page-info").first.inner_text()
    ids = {t.split(" · ")[1] for t in page.locator("#gallery-table tbody td.prompt .muted").all_inner_texts()}
    assert ids == {k[0] for k in counting}
    # each cell shows that sampler's image of that item
    first = page.locator("#gallery-table tbody tr").first
    srcs = first.locator("td.cell img").evaluate_all("els => els.map(e => e.getAttribute('src'))")
    prompt_id = first.locator("td.prompt .muted").inner_text().split(" · ")[1]
    expected_srcs = sorted(r["media_path"] for r in rows if r["prompt_id"] == prompt_id)
    assert sorted(srcs) == expected_srcs
    assert report_page.errors == []


@browser
def test_an_incomplete_run_says_so_on_every_view(chromium, shapebench_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(shapebench_run, out)
    removed = sum(pq.read_metadata(p).num_rows for p in list_parts(out)[:1])
    list_parts(out)[0].unlink()
    write_report(out)
    page = Page(chromium, out)
    for view in ("results", "compare", "gallery", "run"):
        p = page.view(view)
        note = p.locator(f"#view-{view} .incomplete")
        assert note.count() == 1 and note.is_visible(), view
        assert f"Incomplete run: {144 - removed} of 144 samples" in note.inner_text(), view
        assert_no_stray_text(p)
    assert page.errors == []
    page.page.close()


@browser
def test_a_video_shows_its_frame_strip_and_plays_on_click(chromium, tmp_path):
    from zeta_eval.media import save_frame_strip, save_video

    out = tmp_path / "video_run"
    rows = []
    created = dt.datetime.now(dt.timezone.utc)
    for s, name in enumerate(("standard", "zeta")):
        for k in range(2):
            video = torch.rand(8, 3, 16, 16)
            folder = f"media/{name}-0/set"
            save_video(video, out / folder / f"p{k}_seed{k}.mp4", fps=4)
            save_frame_strip(video, out / folder / f"p{k}_seed{k}_strip.png")
            rows.append(full_row(**{"sample_id": f"{name}{k}", "prompt_set": "set", "prompt_id": f"p{k}", "prompt": f"clip {k}",
                         "seed": k, "sample_index": 0, "category": None, "model": "m", "sampler": name,
                         "sampler_label": name, "sampler_key": f"{name}-0", "sampler_index": s, "sampler_params": "{}",
                         "steps": 4, "gamma_eff": 5.0, "nfe": 8, "seconds": 0.1,
                         "media_path": f"{folder}/p{k}_seed{k}.mp4", "media_strip_path": f"{folder}/p{k}_seed{k}_strip.png",
                         "nonfinite": False, "frame_ssim": 0.5 + 0.1 * k + 0.05 * s,
                         "metric_conventions": json.dumps({"frame_ssim": {}}), "created_at": created}))
    write_part(rows, out, "part-video")
    write_report(out)
    page = Page(chromium, out)
    p = page.view("compare")
    strip = p.locator("#cmp-cards [data-side=a] img.strip").first
    assert strip.get_attribute("src").endswith("_strip.png")
    strip.click()
    video = p.locator("#cmp-cards [data-side=a] video").first
    assert video.get_attribute("src").endswith(".mp4")
    p.wait_for_function("() => { const v = document.querySelector('#cmp-cards video'); return v && v.readyState >= 2; }")
    assert p.evaluate("document.querySelector('#cmp-cards video').error") is None
    assert page.errors == []
    page.page.close()


def _csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------------- compare: any pair
def by_setting(rows: list[dict]) -> dict[str, dict[tuple, dict]]:
    out: dict[str, dict[tuple, dict]] = {}
    for r in rows:
        out.setdefault(r["sampler_key"], {})[(r["prompt_set"], r["prompt_id"], r["seed"], r["sample_index"])] = r
    return out


def recomputed(rows: list[dict], key_a: str, key_b: str, metric: str, category: str | None = None):
    """From samples.parquet alone: the paired difference A - B clustered by prompt (stats.paired_difference, as
    summary.csv) over the items both have, and A's wins, ties and losses."""
    import numpy as np

    settings = by_setting(rows)
    a_rows, b_rows = settings[key_a], settings[key_b]
    keys = [k for k in a_rows if k in b_rows and (category is None or a_rows[k]["category"] == category)]
    value = lambda r: float("nan") if r[metric] is None else r[metric]  # noqa: E731
    a = np.array([value(a_rows[k]) for k in keys])
    b = np.array([value(b_rows[k]) for k in keys])
    clusters = [stats.cluster_key(a_rows[k]["prompt_set"], a_rows[k]["prompt"]) for k in keys]
    est = stats.paired_difference(a, b, clusters)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    return est, (int((d > 0).sum()), int((d == 0).sum()), int((d < 0).sum()))


def test_compare_data_holds_every_pairs_clustered_difference_as_summary_csv(shapebench_run):
    data = read_data(shapebench_run)
    rows = samples(shapebench_run)
    cmp = data["compare"]
    assert cmp["fields"] == list(PAIR_FIELDS)
    n = len(data["settings"])
    assert [tuple(p) for p in cmp["pairs"]] == [(a, b) for a in range(n) for b in range(a + 1, n)]
    assert cmp["scopes"] == ["all"] + data["items"]["category_names"]
    keys = [s["key"] for s in data["settings"]]
    clustered = False
    for p, (a, b) in enumerate(cmp["pairs"]):
        for scope, name in enumerate(cmp["scopes"]):
            entry = dict(zip(PAIR_FIELDS, cmp["stats"]["shapebench"][p][scope]))
            est, (wins, ties, losses) = recomputed(rows, keys[a], keys[b], "shapebench", None if scope == 0 else name)
            assert entry["delta"] == pytest.approx(est.estimate, abs=1e-12)
            if est.lo == est.lo:
                assert entry["lo"] == pytest.approx(est.lo, abs=1e-12)
                assert entry["hi"] == pytest.approx(est.hi, abs=1e-12)
            assert (entry["pairs"], entry["prompts"]) == (est.n, est.n_clusters)
            assert (entry["wins"], entry["ties"], entry["losses"]) == (wins, ties, losses)
            clustered |= est.n_clusters < est.n
    assert clustered  # the demo repeats a prompt: some pairs have fewer prompts than samples
    # against the baseline: summary.csv's own numbers, the win rate included (ties count half)
    summary = {r["sampler_key"]: r for r in _csv(shapebench_run / "summary.csv")}
    base = data["baseline"]
    for p, (a, b) in enumerate(cmp["pairs"]):
        if base not in (a, b):
            continue
        other, sign = (a, 1) if b == base else (b, -1)
        row = summary[keys[other]]
        entry = dict(zip(PAIR_FIELDS, cmp["stats"]["shapebench"][p][0]))
        lo, hi = (entry["lo"], entry["hi"]) if sign == 1 else (-entry["hi"], -entry["lo"])
        assert sign * entry["delta"] == pytest.approx(float(row["shapebench_delta"]), abs=1e-12)
        assert (lo, hi) == (pytest.approx(float(row["shapebench_delta_lo"]), abs=1e-12),
                            pytest.approx(float(row["shapebench_delta_hi"]), abs=1e-12))
        assert entry["prompts"] == int(row["shapebench_pair_prompts"])
        wins = entry["wins"] if sign == 1 else entry["losses"]
        assert (wins + entry["ties"] / 2) / entry["pairs"] == pytest.approx(float(row["shapebench_winrate"]), abs=1e-12)


def test_failure_reasons_of_a_01_metric_are_in_the_data(shapebench_run):
    from metrics.shapebench import REASONS

    data = read_data(shapebench_run)
    (metric,) = data["metrics"]
    assert metric["reasons"] == {str(k): v for k, v in REASONS.items()}
    rows = by_setting(samples(shapebench_run))
    items = data["items"]
    for s in data["settings"]:
        for j, it in enumerate(s["item"]):
            row = rows[s["key"]][(items["prompt_sets"][items["set"][it]], items["id"][it], items["seed"][it],
                                  items["index"][it])]
            assert s["reasons"]["shapebench"][j] == row["shapebench_reason"]
            assert (row["shapebench_reason"] == 0) == (row["shapebench"] == 1)


def test_a_failed_report_marks_the_earlier_page_stale(toy_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(toy_run, out)
    assert 'id="stale"' not in (out / "index.html").read_text(encoding="utf-8")
    part = list_parts(out)[0]
    good = part.read_bytes()
    part.write_bytes(b"not parquet")  # a part that cannot be read: the report fails
    with pytest.raises(ReportError, match="--skip_corrupt") as err:
        write_report(out)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'id="stale"' in page and "This page is out of date" in page
    assert str(markupsafe.escape(str(err.value))) in page  # the reason, escaped as HTML
    assert (out / "report_data.js").is_file()  # the earlier numbers stay readable, under the warning
    assert main(["report", str(out)]) == 2  # one line, exit 2, and the page stays marked
    assert 'id="stale"' in (out / "index.html").read_text(encoding="utf-8")
    part.write_bytes(good)  # fixed: the next report is current again
    write_report(out)
    assert 'id="stale"' not in (out / "index.html").read_text(encoding="utf-8")
    # no results left at all (parts and merged samples removed): the page says so too
    shutil.rmtree(out / "parts")
    (out / "samples.parquet").unlink()
    with pytest.raises(ReportError, match="holds no results yet"):
        write_report(out)
    assert 'id="stale"' in (out / "index.html").read_text(encoding="utf-8")
    # a folder that never had a page gets none
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReportError):
        write_report(empty)
    assert not (empty / "index.html").exists()


STRAY = re.compile(r"\b(null|undefined|NaN)\b|\b1 (items|samples|prompts|sampler settings)\b|\btasks 0 of 1\b")


def assert_no_stray_text(page) -> None:
    """No value the script failed to turn into words, and no "1 items", in the header and the view shown (its
    code and pre blocks left out: config.yaml and parameters as JSON say null where they mean it)."""
    text = page.evaluate("""() => [document.querySelector("header"), document.querySelector("main .view:not([hidden])")]
        .map((el) => { const c = el.cloneNode(true); c.querySelectorAll("pre, code").forEach((x) => x.remove());
                       return c.textContent; }).join("\\n")""")
    assert not STRAY.search(text), STRAY.search(text).group(0)


def stats_row(page, scope: str, metric: str = "shapebench") -> dict:
    row = page.locator(f"#cmp-stats tbody tr[data-scope='{scope}']")
    delta = row.locator(f"td.delta[data-metric='{metric}']")
    interval = row.locator(f"td.interval[data-metric='{metric}']")
    return {"delta": float(delta.get_attribute("data-value")), "lo": float(interval.get_attribute("data-lo")),
            "hi": float(interval.get_attribute("data-hi")), "delta_text": delta.inner_text().strip(),
            "interval_text": interval.inner_text().strip(),
            "wtl": row.locator(f"td.wtl[data-metric='{metric}']").inner_text().strip(),
            "pairs": row.locator(f"td.pairs[data-metric='{metric}']").inner_text().strip()}


@browser
def test_compare_shows_the_difference_of_any_pair_as_summary_csv_and_samples_parquet(report_page, shapebench_run,
                                                                                        screenshots):
    data = read_data(shapebench_run)
    rows = samples(shapebench_run)
    summary = {r["sampler_key"]: r for r in _csv(shapebench_run / "summary.csv")}
    labels = {s["key"]: s["label"] for s in data["settings"]}
    base = data["settings"][data["baseline"]]["key"]
    zeta = next(s["key"] for s in data["settings"] if s["name"] == "zeta")
    other = next(s["key"] for s in data["settings"] if s["key"] not in (base, zeta))
    page = report_page.view("compare")
    for key_a, key_b in ((zeta, base), (base, zeta), (other, zeta), (zeta, other)):
        page.select_option("#cmp-a", label=labels[key_a])
        page.select_option("#cmp-b", label=labels[key_b])
        for scope in ["all"] + data["items"]["category_names"]:
            shown = stats_row(page, scope)
            est, (wins, ties, losses) = recomputed(rows, key_a, key_b, "shapebench", None if scope == "all" else scope)
            assert shown["delta"] == pytest.approx(est.estimate, abs=1e-9), (key_a, key_b, scope)
            assert (shown["lo"], shown["hi"]) == (pytest.approx(est.lo, abs=1e-9), pytest.approx(est.hi, abs=1e-9))
            sign = "+" if est.estimate > 0 else ""
            assert shown["delta_text"] == f"{est.estimate * 100:{sign}.2f}"
            assert shown["interval_text"] == f"[{est.lo * 100:.2f}, {est.hi * 100:.2f}]"
            assert shown["wtl"] == f"{wins} · {ties} · {losses}"
            assert shown["pairs"] == f"{est.n} ({est.n_clusters})"
        if key_b == base:  # summary.csv's row of A against the baseline: the same numbers
            shown, row = stats_row(page, "all"), summary[key_a]
            assert shown["delta"] == pytest.approx(float(row["shapebench_delta"]), abs=1e-9)
            assert shown["lo"] == pytest.approx(float(row["shapebench_delta_lo"]), abs=1e-9)
            assert shown["hi"] == pytest.approx(float(row["shapebench_delta_hi"]), abs=1e-9)
    page.screenshot(path=str(screenshots / "compare_stats.png"), full_page=True)
    page.select_option("#cmp-b", label=labels[zeta])  # A = B: nothing to compare, said so
    assert page.locator("#cmp-same").is_visible() and page.locator("#cmp-stats").count() == 0
    assert_no_stray_text(page)
    assert report_page.errors == []


@browser
def test_compare_and_gallery_choices_live_in_the_url_and_survive_a_reload(report_page, shapebench_run, chromium):
    data = read_data(shapebench_run)
    labels = [s["label"] for s in data["settings"]]
    page = report_page.view("compare")
    page.select_option("#cmp-a", label=labels[0])
    page.select_option("#cmp-b", label=labels[2])
    page.select_option("#cmp-filter", "differ")
    page.select_option("#cmp-category", label="position")
    url = page.url
    assert f"a={data['settings'][0]['key']}" in url and f"b={data['settings'][2]['key']}" in url
    assert "show=differ" in url and "category=position" in url and "metric=shapebench" in url

    def seen(p):
        return ({sel: p.locator(sel).input_value() for sel in ("#cmp-a", "#cmp-b", "#cmp-filter", "#cmp-category")},
                p.locator("#cmp-stats").inner_text(), sorted(_cards(p)), p.locator("#cmp-summary").inner_text())

    before = seen(page)
    assert before[0] == {"#cmp-a": "0", "#cmp-b": "2", "#cmp-filter": "differ",
                         "#cmp-category": str(data["items"]["category_names"].index("position"))}
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#view-compare").is_visible() and seen(page) == before and page.url == url
    shared = Page(chromium, shapebench_run)  # the link, opened afresh: the same view
    shared.page.goto(url)
    shared.page.wait_for_selector("#cmp-stats")
    assert seen(shared.page) == before
    shared.page.close()
    # another view and back: the choices are kept; the URL always names what is shown
    report_page.view("gallery")
    page.fill("#gal-text", "circle")
    page.wait_for_function("() => location.hash.startsWith('#gallery?q=circle')", timeout=10_000)  # set on redraw
    assert "#gallery?q=circle" in page.url
    rows = page.locator("#gallery-table tbody td.prompt").all_inner_texts()
    report_page.view("compare")
    assert page.url == url and seen(page) == before
    page.goto(url.split("#")[0] + "#gallery?q=circle")
    page.reload()
    page.wait_for_selector("#gallery-table")
    assert page.locator("#gal-text").input_value() == "circle"
    assert page.locator("#gallery-table tbody td.prompt").all_inner_texts() == rows
    assert report_page.errors == []


@browser
def test_missing_media_show_a_note_not_a_broken_image(chromium, shapebench_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(shapebench_run, out)
    data = read_data(out)
    zeta = next(s for s in data["settings"] if s["name"] == "zeta")
    shutil.rmtree(out / zeta["dir"])  # the zeta setting's images are not in this folder
    page = Page(chromium, out)
    for view, absent in (("compare", PAGE_COMPARE_SIZE), ("gallery", 20)):
        p = page.view(view)
        page.images_loaded(f"#view-{view} img")  # the others load; the missing ones became notes
        notes = p.locator(f"#view-{view} .missing.absent")
        assert notes.count() == absent, view
        assert set(notes.all_inner_texts()) == {"media not in this folder"}
        assert all(t.startswith(zeta["dir"]) for t in notes.evaluate_all("els => els.map(e => e.title)"))
        assert p.locator(f"#view-{view} img").count() > 0
    # the only errors: the browser's own lines about the absent files
    failed = [e for e in page.errors if e.startswith("failed: file://")]
    assert failed and all(zeta["dir"] in e for e in failed)
    assert set(page.errors) - set(failed) == {"Failed to load resource: net::ERR_FILE_NOT_FOUND"}
    page.page.close()


PAGE_COMPARE_SIZE = 24  # cards on a page of Compare (zeta is side A by default: one note per card)


@browser
def test_table_headers_sort_from_the_keyboard(report_page, shapebench_run):
    page = report_page.page
    summary = _csv(shapebench_run / "summary.csv")
    header = page.locator("#summary-table th", has_text="NFE").first
    previous = page.locator("#summary-table th", has_text="γ_eff").first
    previous.locator("button").focus()
    page.keyboard.press("Tab")  # the headers are in the tab order
    assert page.evaluate("document.activeElement.textContent") == "NFE"
    assert header.get_attribute("aria-sort") == "none"
    nfe = [float(r["nfe"]) for r in summary]
    for key, sort in (("Enter", "descending"), (" ", "ascending")):
        page.keyboard.press(key)
        assert header.get_attribute("aria-sort") == sort
        order = sorted(range(len(summary)), key=lambda k: -nfe[k] if sort == "descending" else nfe[k])
        assert _labels(page, "#summary-table") == [summary[k]["sampler_label"] for k in order]
        assert previous.get_attribute("aria-sort") == "none"
    assert report_page.errors == []


@browser
def test_no_stray_text_links_to_the_files_and_failure_reasons(report_page, shapebench_run):
    from metrics.shapebench import REASONS

    page = report_page.page
    for view in ("results", "compare", "gallery", "run"):
        report_page.view(view)
        assert_no_stray_text(page)
    # the files behind the page, linked from every view
    for name in ("summary.md", "summary.csv", "samples.parquet"):
        assert page.locator(f"#files a[href='{name}']").is_visible() and (shapebench_run / name).is_file()
    # Results: prompts beside samples, and which differences hold under Holm, as summary.csv says
    report_page.view("results")
    summary = {r["sampler_label"]: r for r in _csv(shapebench_run / "summary.csv")}
    for tr in page.locator("#summary-table tbody tr").all():
        cells = tr.locator("td").all_inner_texts()
        row = summary[cells[0]]
        assert (cells[1], cells[2]) == (row["n"], row["n_prompts"])
    holm = {tr.locator("td").first.inner_text(): tr.locator("td.holm").inner_text()
            for tr in page.locator("#paired-table tbody tr").all()}
    assert holm == {label: {"True": "yes", "False": "no"}[r["shapebench_delta_holm"]] for label, r in summary.items()
                    if r["shapebench_delta_holm"]}
    run = report_page.view("run").locator("#view-run").inner_text()
    assert re.search(r"array tasks\s+none \(not an array job\)", run)
    # the gallery on one page (the old page printed "null" where a second pager was not needed), and one item
    p = report_page.view("gallery")
    page.select_option("#gal-category", label="counting")
    assert_no_stray_text(p)
    only = p.locator("#gallery-table tbody td.prompt .muted").first.inner_text().split(" · ")[1]
    page.select_option("#gal-category", "-1")
    page.fill("#gal-text", only)
    assert "(1 item)" in p.locator("#gal-body .page-info").first.inner_text()
    assert_no_stray_text(p)
    # every image links its full-size file; a wrong 0/1 score says why
    rows = by_setting(samples(shapebench_run))
    data = read_data(shapebench_run)
    p = report_page.view("compare")
    page.select_option("#cmp-filter", "differ")
    checked = 0
    for card in p.locator("#cmp-cards .card").all():
        key = ("shapebench", card.get_attribute("data-prompt-id"), int(card.get_attribute("data-seed")),
               int(card.get_attribute("data-sample-index")))
        for side, k in (("a", p.locator("#cmp-a").input_value()), ("b", p.locator("#cmp-b").input_value())):
            row = rows[data["settings"][int(k)]["key"]][key]
            el = card.locator(f"[data-side={side}]")
            assert el.locator("a.full").get_attribute("href") == row["media_path"]
            reason = el.locator(".scores .reason")
            if row["shapebench"] == 0:
                assert reason.inner_text().strip() == REASONS[row["shapebench_reason"]]
                checked += 1
            else:
                assert reason.count() == 0
    assert checked > 0
    assert report_page.errors == []
