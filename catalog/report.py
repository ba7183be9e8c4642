"""The report: summary tables, published values beside ours, a Dice heatmap, Dice-versus-step curves and
overlays, as Markdown + PNG; a 3D section (``catalog.volume_report``) when there are volume-scope results.

The slice-wise tables and figures read slice-scope results only: a volume-scope Dice (one object
through a whole case) is not comparable with a per-slice one and has its own section."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from catalog.figures import overlay_figure  # noqa: E402
from catalog.listing import markdown_table  # noqa: E402
from catalog.published import section as published_section  # noqa: E402
from catalog.query import INSTANCE_SUMMARY_SQL, connect  # noqa: E402
from catalog.volume_report import section as volume_section  # noqa: E402
from tasks.locations import Location  # noqa: E402

TABLE_SQL = """
    SELECT modality, anatomy, target, model, spec_label AS spec, count(*) AS n,
           round(median(dice), 3) AS dice_median,
           round(quantile_cont(dice, 0.25), 3) AS dice_q1, round(quantile_cont(dice, 0.75), 3) AS dice_q3,
           round(avg(dice), 3) AS dice_mean, round(avg(nsd), 3) AS nsd_mean, round(median(hd95), 2) AS hd95_median
    FROM results WHERE step = 1 AND scope = 'slice' GROUP BY ALL ORDER BY ALL
"""
STEPS_SQL = """
    SELECT model || ' / ' || spec_label AS series, step, avg(dice) AS dice, count(*) AS n
    FROM results WHERE scope = 'slice'
      AND spec_id IN (SELECT spec_id FROM results GROUP BY spec_id HAVING max(step) > 1)
    GROUP BY ALL ORDER BY ALL
"""
SPECS_SQL = """
    SELECT spec_id, any_value(protocol) AS protocol, any_value(spec) AS parameters, count(*) AS rows
    FROM results GROUP BY spec_id ORDER BY protocol, spec_id
"""


def heatmap(con, out: Path) -> Path | None:
    """Median Dice at step 1, targets down, model/spec across."""
    rows = con.execute("""
        SELECT modality || '/' || target AS target, model || '\n' || spec_label AS column, median(dice)
        FROM results WHERE step = 1 AND scope = 'slice' GROUP BY ALL ORDER BY ALL""").fetchall()
    if not rows:
        return None
    targets = sorted({r[0] for r in rows})
    columns = sorted({r[1] for r in rows})
    grid = np.full((len(targets), len(columns)), np.nan)
    for target, column, dice in rows:
        grid[targets.index(target), columns.index(column)] = dice
    fig, ax = plt.subplots(figsize=(1.3 * len(columns) + 3, 0.45 * len(targets) + 1.8))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(targets)), targets, fontsize=8)
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="median Dice (step 1)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def step_curves(con, out: Path) -> Path | None:
    """Mean Dice against the prompt step (clicks, iterations) for every multi-step protocol."""
    rows = con.execute(STEPS_SQL).fetchall()
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for series in sorted({r[0] for r in rows}):
        points = [(r[1], r[2]) for r in rows if r[0] == series]
        ax.plot(*zip(*points), marker="o", ms=3, label=series)
    ax.set_xlabel("step (clicks / iterations)")
    ax.set_ylabel("mean Dice")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_report(catalog: Location, outdir: Path, overlays: bool = True) -> Path:
    """Write ``report.md`` and its figures into ``outdir``; return the Markdown path."""
    outdir.mkdir(parents=True, exist_ok=True)
    con = connect(catalog)
    if con.execute("SELECT count(*) FROM results").fetchone()[0] == 0:
        raise ValueError(f"{catalog}: the catalog holds no results yet; run samatlas evaluate first")
    cursor = con.execute(TABLE_SQL)
    columns, rows = [d[0] for d in cursor.description], cursor.fetchall()
    parts = ["# samatlas report", ""]
    if rows:
        parts += ["Per target, model and protocol spec at step 1, per slice: median Dice with its interquartile range,"
                  " mean Dice, mean NSD (convention and tolerance in the spec: nsd=surface@tolerance) and median HD95 (mm).",
                  "", markdown_table(columns, rows), ""]
    cursor = con.execute(SPECS_SQL)
    parts += ["## Protocol specs", "",
              "Each result is keyed by its object, the model's sha256, its spec id and its step; a spec is the "
              "protocol's name and every parameter that changes what is sent or scored.", "",
              markdown_table([d[0] for d in cursor.description], cursor.fetchall()), ""]
    cursor = con.execute(INSTANCE_SUMMARY_SQL)
    instance_rows = cursor.fetchall()
    if instance_rows:
        parts += ["## Instance segmentation (micro-sam)", "",
                  "Each slice's objects pasted into one instance map (largest first, then connected components) and "
                  "matched to its GT instances: mSA over IoU 0.50..0.95, SA50, SA75, as means over slices.", "",
                  markdown_table([d[0] for d in cursor.description], instance_rows), ""]
    for title, path in (("Median Dice", heatmap(con, outdir / "heatmap.png")),
                        ("Dice against prompt steps", step_curves(con, outdir / "steps.png"))):
        if path is not None:
            parts += [f"## {title}", "", f"![{title}]({path.name})", ""]
    if overlays and rows:
        path = overlay_figure(catalog, outdir / "overlays.png")
        parts += ["## Overlays (largest object per target)", "", f"![overlays]({path.name})", ""]
    parts += volume_section(con, outdir, overlays)
    parts += published_section(con)
    report = outdir / "report.md"
    report.write_text("\n".join(parts))
    return report
