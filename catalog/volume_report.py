"""The report's 3D section, present only when the catalog holds volume-scope results: 3D Dice and NSD
per target at each spec's final step, the CVPR challenges' case summary, Dice against the click step
of ``cvpr25-interactive``, propagation beside slice-wise GT boxes, and overlays of stored predictions.

Every number comes from the ``results`` rows of scope ``volume`` (one per object, model, spec and
step; the object is a label through the whole case). The overlays read the predicted label images a
volumetric run stored in the case (``volume_steps.prediction``); no model is run here.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from catalog.figures import volume_overlay_figure  # noqa: E402
from catalog.listing import markdown_table  # noqa: E402
from catalog.query import CVPR_SUMMARY_SQL  # noqa: E402

CLICK_PROTOCOL = "cvpr25-interactive"
BASELINE_PROTOCOL = "slicewise-box3d"

FINAL_STEPS_SQL = """
    SELECT * FROM results WHERE scope = 'volume'
    QUALIFY step = max(step) OVER (PARTITION BY spec_id)
"""
"""Volume-scope results at the final step of their spec (a spec's objects all record every step)."""

VOLUME_TABLE_SQL = f"""
    SELECT modality, anatomy, target, model, spec_label AS spec, step, count(*) AS n,
           round(median(dice), 3) AS dice_median,
           round(quantile_cont(dice, 0.25), 3) AS dice_q1, round(quantile_cont(dice, 0.75), 3) AS dice_q3,
           round(avg(dice), 3) AS dice_mean,
           round(median(nsd), 3) AS nsd_median,
           round(quantile_cont(nsd, 0.25), 3) AS nsd_q1, round(quantile_cont(nsd, 0.75), 3) AS nsd_q3,
           round(avg(nsd), 3) AS nsd_mean
    FROM ({FINAL_STEPS_SQL}) GROUP BY ALL ORDER BY ALL
"""

CLICK_STEPS_SQL = f"""
    SELECT model || ' / ' || dataset || ' / ' || target AS series, step, avg(dice) AS dice, count(*) AS n
    FROM results WHERE scope = 'volume' AND protocol = '{CLICK_PROTOCOL}'
    GROUP BY ALL ORDER BY ALL
"""

PAIRS_SQL = f"""
    SELECT p.dataset, p.case_id, p.label, p.target, p.model, p.protocol, p.spec_label AS spec,
           b.spec_label AS baseline, p.dice AS dice, b.dice AS dice_slicewise
    FROM results p JOIN results b
      ON b.dataset = p.dataset AND b.case_id = p.case_id AND b.label = p.label
         AND b.model = p.model AND b.model_sha256 = p.model_sha256
    WHERE p.scope = 'volume' AND b.scope = 'volume' AND p.step = 1 AND b.step = 1
      AND p.protocol <> '{BASELINE_PROTOCOL}' AND b.protocol = '{BASELINE_PROTOCOL}'
    ORDER BY ALL
"""
"""Each volume object's Dice under a propagation spec beside its slice-wise-box Dice (same model
weights). Step 1 is the propagation from the spec's first prompt: the only step of cvpr24-box3d and
the radioactive protocols, and the box step of cvpr25-interactive (its later steps add clicks)."""

PAIRS_SUMMARY_SQL = f"""
    SELECT model, target, spec, baseline, count(*) AS n,
           round(avg(dice), 3) AS dice_mean, round(avg(dice_slicewise), 3) AS slicewise_mean,
           round(avg(dice - dice_slicewise), 3) AS difference_mean,
           round(median(dice - dice_slicewise), 3) AS difference_median,
           count(*) FILTER (WHERE dice >= dice_slicewise) AS at_least_slicewise
    FROM ({PAIRS_SQL}) GROUP BY ALL ORDER BY ALL
"""


def has_volume_results(con: duckdb.DuckDBPyConnection) -> bool:
    """True if the catalog holds any volume-scope result."""
    return con.execute("SELECT count(*) FROM results WHERE scope = 'volume'").fetchone()[0] > 0


def _table(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple]]:
    cursor = con.execute(sql)
    return [d[0] for d in cursor.description], cursor.fetchall()


def volume_table(con: duckdb.DuckDBPyConnection) -> list[str]:
    """3D Dice and NSD per target, model and spec at the spec's final step, as Markdown lines."""
    columns, rows = _table(con, VOLUME_TABLE_SQL)
    return ["## Volumes (3D)", "",
            "Each object is a label through the whole case, scored in 3D after the final step of its spec: "
            "median Dice with its interquartile range and mean, the same for NSD (convention and tolerance "
            "in the spec: nsd=surface@tolerance); n counts objects.", "",
            markdown_table(columns, rows), ""]


def cvpr_table(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The CVPR challenges' case summary (``catalog.query.CVPR_SUMMARY_SQL``) as Markdown lines."""
    columns, rows = _table(con, CVPR_SUMMARY_SQL)
    return ["## CVPR case scores (3D)", "",
            "As the CVPR 2024/2025 challenges score: per case the mean over its labels, NSD set to 0 unless the "
            "case's mean DSC > 0.2; the first and the final step; DSC_AUC and NSD_AUC over the five click "
            "steps of cvpr25-interactive (0..4). Means over the cases of a dataset.", "",
            markdown_table(columns, rows), ""]


def click_curves(con: duckdb.DuckDBPyConnection, out: Path) -> Path | None:
    """Mean 3D Dice against the cvpr25-interactive step (1 = the box, 2..6 = clicks), one line per
    model, dataset and target; None if no such results."""
    rows = con.execute(CLICK_STEPS_SQL).fetchall()
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for series in sorted({r[0] for r in rows}):
        points = [(r[1], r[2]) for r in rows if r[0] == series]
        ax.plot(*zip(*points), marker="o", ms=3, label=series)
    ax.set_xlabel("step (1 = box, 2..6 = clicks)")
    ax.set_ylabel("mean 3D Dice")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def propagation_table(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Propagation specs beside slice-wise GT boxes on the same objects, as Markdown lines (none if
    no object was run under both)."""
    columns, rows = _table(con, PAIRS_SUMMARY_SQL)
    if not rows:
        return []
    return ["## Propagation against slice-wise boxes (3D)", "",
            f"The same objects and model weights under a propagation spec (step 1: the propagation from its "
            f"first prompt) and under {BASELINE_PROTOCOL} (a GT box on every slice, the baseline): mean 3D Dice "
            f"of each, the mean and median of the difference (propagation - slice-wise) and how many objects "
            f"propagation scored at least as well on.", "",
            markdown_table(columns, rows), ""]


def propagation_scatter(con: duckdb.DuckDBPyConnection, out: Path) -> Path | None:
    """Each paired object's propagation Dice (y) against its slice-wise-box Dice (x), one colour per
    model and protocol; None if there are no pairs."""
    rows = con.execute(f"SELECT model || ' / ' || protocol, dice_slicewise, dice FROM ({PAIRS_SQL})").fetchall()
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    for series in sorted({r[0] for r in rows}):
        xs, ys = zip(*[(r[1], r[2]) for r in rows if r[0] == series])
        ax.scatter(xs, ys, s=12, alpha=0.7, label=series)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel(f"3D Dice, {BASELINE_PROTOCOL}")
    ax.set_ylabel("3D Dice, propagation (step 1)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def overlay_lines(con: duckdb.DuckDBPyConnection, out: Path) -> list[str]:
    """The stored-prediction overlays (best and worst final-step Dice per model and spec) as Markdown
    lines, with a line naming the objects skipped because their prediction is not stored."""
    drawn = volume_overlay_figure(con, out)
    lines = ["## Overlays (3D, stored predictions)", "",
             "The key slice of the best and the worst object (final-step 3D Dice) per model and spec: ground "
             "truth (green) and the stored prediction (red), read from the case's label images; no model is run.", ""]
    if drawn.path is not None:
        lines += [f"![3D overlays]({drawn.path.name})", ""]
    if drawn.skipped:
        lines += ["Not drawn, prediction not stored: " + "; ".join(drawn.skipped) + ".", ""]
    return lines


def section(con: duckdb.DuckDBPyConnection, outdir: Path, overlays: bool = True) -> list[str]:
    """The report's 3D section as Markdown lines (figures written into ``outdir``); empty if the
    catalog holds no volume-scope results."""
    if not has_volume_results(con):
        return []
    lines = volume_table(con) + cvpr_table(con)
    path = click_curves(con, outdir / "volume_clicks.png")
    if path is not None:
        lines += ["## Dice against click step (3D, cvpr25-interactive)", "", f"![3D Dice against click step]({path.name})", ""]
    lines += propagation_table(con)
    path = propagation_scatter(con, outdir / "volume_propagation.png")
    if path is not None:
        lines += [f"![propagation against slice-wise boxes]({path.name})", ""]
    if overlays:
        lines += overlay_lines(con, outdir / "volume_overlays.png")
    return lines
