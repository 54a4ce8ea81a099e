"""The report's figures: the Pareto front of pareto.png, points of equal cost kept apart, and every label of
pareto.png and grid.png inside the figure, none over another."""

from __future__ import annotations

import itertools
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from zeta_eval.report import dodge, grid_figure, pareto_figure, pareto_front  # noqa: E402
from zeta_eval.results import Report  # noqa: E402

#: the labels of ShapeBench v1's study (docs/results/shapebench/v1): 14 settings, 4 of them standard CFG at the same cost
STUDY_LABELS = ["standard γ=1.5", "standard γ=3", "standard γ=4.5", "standard γ=6 (= γ_eff of γ1=3)",
                "standard γ=3 (NFE-matched to zigzag)", "zigzag γ=3", "implicit_zigzag γ=3", "zeta γ=1.5 τ=3",
                "zeta γ=2.25 τ=3", "zeta γ=3 τ=3", "zeta γ=3 warm-up 1", "zeta γ=3 warm-up 6",
                "zeta γ=3 window ends at step 10", "zeta γ=3 adaptive warm-up"]


def test_pareto_front_is_the_settings_nothing_beats():
    costs = [1.0, 1.0, 2.0, 3.0, 3.0, 4.0, float("nan"), 0.5]
    scores = [50.0, 60.0, 55.0, 70.0, 70.0, 65.0, 99.0, float("nan")]
    # 0 loses to 1 (same cost, lower score), 2 to 1, 5 to 3; 3 and 4 tie (neither is beaten); 6 and 7 have no value
    assert pareto_front(costs, scores) == [1, 3, 4]
    # lower is better: 0 is the cheapest with the lowest score, and beats every other setting
    assert pareto_front(costs, scores, higher_is_better=False) == [0]
    assert pareto_front([3.0, 1.0, 2.0], [3.0, 1.0, 2.0]) == [1, 2, 0]  # every setting buys score with cost
    assert pareto_front([], []) == []


def test_dodge_spreads_points_of_equal_cost_and_leaves_the_others():
    xs = [1.0, 1.0, 1.0, 2.0, 1.005, float("nan"), 3.0]
    out = dodge(xs, 0.1)
    run = sorted(out[k] for k in (0, 1, 2, 4))  # within 0.1 of each other: one run of four, 0.1 apart
    assert run == pytest.approx([1.00125 - 0.15, 1.00125 - 0.05, 1.00125 + 0.05, 1.00125 + 0.15])
    assert out[0] < out[1] < out[2] < out[4]  # in their order (cost, then index)
    assert out[3] == 2.0 and out[6] == 3.0 and math.isnan(out[5])
    # a group that widens as it grows reaches its left neighbour, which then joins it: all end up 0.1 apart
    out = dodge([0.0, 0.25, 0.3, 0.3, 0.3, 0.3], 0.1)
    assert np.diff(out) == pytest.approx([0.1] * 5) and sum(out) / 6 == pytest.approx(1.45 / 6)


def summary_of(labels, costs, means, half=5.0):
    return [{"sampler_label": label, "sampler_key": f"k{k}", "seconds_per_sample": c, "m_mean": m,
             "m_lo": m - half, "m_hi": m + half}
            for k, (label, c, m) in enumerate(zip(labels, costs, means))]


def report_of(metrics):
    return Report(table=None, settings=[], metrics=metrics, baseline=None, experiment={}, skipped=[])


def inside(box, outer, tol=1.0):
    return (box.x0 >= outer.x0 - tol and box.y0 >= outer.y0 - tol
            and box.x1 <= outer.x1 + tol and box.y1 <= outer.y1 + tol)


def overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def drawn_inside(fig, renderer) -> bool:
    """Everything the figure draws (ticks inside the view, labels, titles, legends) lies inside it."""
    tight = fig.get_tightbbox(renderer)  # inches
    width, height = fig.get_size_inches()
    return tight.x0 >= -0.01 and tight.y0 >= -0.01 and tight.x1 <= width + 0.01 and tight.y1 <= height + 0.01


def texts_of(fig):
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("metric,front", [("m", [2, 6, 5, 7]), ("frame_lpips", [3])])
def test_pareto_figure_draws_the_front_and_every_label_fits(metric, front):
    costs = [0.2, 0.2, 0.2, 0.2, 0.31, 0.4, 0.36, 0.5, 0.21, 0.21, 0.21, 0.25, 0.22, 0.23]
    means = [40.0, 55.0, 60.0, 30.0, 50.0, 70.0, 62.0, 80.0, 45.0, 50.0, 58.0, 59.0, 52.0, 54.0]
    summary = [{**row, f"{metric}_mean": row["m_mean"], f"{metric}_lo": row["m_lo"], f"{metric}_hi": row["m_hi"]}
               for row in summary_of(STUDY_LABELS, costs, means)]
    higher = metric != "frame_lpips"
    assert pareto_front(costs, means, higher_is_better=higher) == front
    fig = pareto_figure(report_of([metric]), summary, cost="seconds")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    line = [ln for ln in ax.get_lines() if ln.get_label() == "Pareto front"]
    assert len(line) == 1
    # the staircase passes through the front's points (drawn at their dodged positions), cheapest first
    step = 0.015 * (max(costs) - min(costs))
    xs = dodge(costs, step)
    assert list(line[0].get_xdata()) == pytest.approx([xs[k] for k in front])
    assert list(line[0].get_ydata()) == pytest.approx([means[k] for k in front])
    # the four settings at 0.2 s, the three at 0.21 s and their neighbours are drawn apart, none over another, and
    # near their cost
    centres = [(float(c.lines[0].get_xdata()[0]), float(c.lines[0].get_ydata()[0])) for c in ax.containers]
    assert [y for _, y in centres] == means
    assert min(np.diff(sorted(x for x, _ in centres))) >= step * (1 - 1e-9)
    assert all(abs(x - c) <= 7 * step for (x, _), c in zip(centres, costs))
    # every text inside the figure; the legend below the plot, not over it; no two legend entries overlap
    assert drawn_inside(fig, renderer)
    legend = fig.legends[0]
    assert legend.get_window_extent(renderer).y1 <= ax.get_tightbbox(renderer).y0 + 1
    entries = [t.get_window_extent(renderer) for t in legend.get_texts()]
    assert len(entries) == 15  # 14 settings and the front
    assert not any(overlap(a, b) for a, b in itertools.combinations(entries, 2))
    plt.close(fig)


def test_grid_titles_and_row_labels_fit_without_overlap():
    prompts = ["a blue circle and an orange cross", "a purple diamond right of a white ring",
               "three stars", "a red square",
               "an orange star, a yellow cross, a pink circle and a teal ring, all of them small and far apart",
               "two circles", "a teal ring above a green square", "supercalifragilisticexpialidociouslylongword"]
    image = np.zeros((96, 96, 3), np.uint8)
    cells = [[image if (r + c) % 5 else None for c in range(len(STUDY_LABELS))] for r in range(len(prompts))]
    fig = grid_figure(STUDY_LABELS, prompts, cells, (1.6, 1.6))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    assert drawn_inside(fig, renderer)
    axes = fig.axes
    n_cols = len(STUDY_LABELS)
    titles = [ax.title for ax in axes[:n_cols]]
    boxes = [t.get_window_extent(renderer) for t in titles]
    for t, box in zip(titles, boxes):
        assert inside(box, figure_box), t.get_text()
        assert t.get_text().count("\n") <= 2
    assert not any(overlap(a, b) for a, b in itertools.combinations(boxes, 2))
    for box, ax in zip(boxes, axes[:n_cols]):  # each title over its own column
        column = ax.get_window_extent(renderer)
        assert column.x0 - 4 <= box.x0 and box.x1 <= column.x1 + 4
    labels = [a for a in texts_of(fig) if a not in titles]
    assert len(labels) == len(prompts)
    first_column = [axes[r * n_cols].get_window_extent(renderer) for r in range(len(prompts))]
    for label, cell in zip(labels, first_column):
        box = label.get_window_extent(renderer)
        assert inside(box, figure_box), label.get_text()
        assert box.x1 <= cell.x0 and cell.y0 <= (box.y0 + box.y1) / 2 <= cell.y1, label.get_text()
        assert label.get_text().count("\n") <= 2
    assert labels[4].get_text().endswith("…")  # too long for three lines: cut, visibly
    assert labels[7].get_text().replace("\n", "") == prompts[7]  # a word wider than the column is broken, not cut
    plt.close(fig)


def test_pareto_legend_says_when_points_were_spread():
    far = summary_of(["a", "b", "c"], [1.0, 2.0, float("nan")], [50.0, 60.0, 70.0])  # nothing to spread
    near = summary_of(["a", "b", "c"], [1.0, 1.0, 2.0], [50.0, 60.0, 70.0])
    titles = []
    for summary in (far, near):
        fig = pareto_figure(report_of(["m"]), summary, cost="seconds")
        titles.append(fig.legends[0].get_title().get_text())
        plt.close(fig)
    assert titles == ["", "points of nearly equal cost are drawn 0.015 s apart"]


def test_pareto_styles_give_settings_of_one_family_distinct_colours_and_markers():
    from zeta_eval.report import PARETO_COLOURS, pareto_styles

    # the v2 study's order: 6 standard settings, zigzag, implicit zigzag, then 5 zeta settings; colour k mod 10 gave
    # standard γ=1.5 and the zeta settings from the 11th on the colours of standard settings: now up to 20 settings
    # each have their own colour
    families = ["standard"] * 6 + ["zigzag", "implicit_zigzag"] + ["zeta"] * 5
    assert len({c for c, _ in pareto_styles(families)}) == 13
    assert len({c for c, _ in pareto_styles(["a", "b"] * 10)}) == 20 == len(set(PARETO_COLOURS))
    for fams in (families, ["zeta"] * 25 + ["standard"] * 3, ["a", "b"] * 15, ["a"] * 30):
        styles = pareto_styles(fams)
        assert len(set(styles)) == len(styles)  # no two settings drawn alike
        for family in set(fams):
            mine = [s for s, f in zip(styles, fams) if f == family]
            assert len({c for c, _ in mine}) == min(len(mine), 20)
            assert len({m for _, m in mine}) == min(len(mine), 12)
    # the figure uses them
    rows = summary_of(STUDY_LABELS[:13], [0.2 + 0.01 * k for k in range(13)], [50.0 + k for k in range(13)])
    summary = [{**row, "sampler": f} for row, f in zip(rows, families)]
    fig = pareto_figure(report_of(["m"]), summary, cost="seconds")
    drawn = [(matplotlib.colors.to_hex(c.lines[0].get_color()), c.lines[0].get_marker())
             for c in fig.axes[0].containers]
    assert drawn == [(matplotlib.colors.to_hex(c), m) for c, m in pareto_styles(families)]
    plt.close(fig)
