"""The figure of the training-missingness curve (plain JSON for ``Plotly.newPlot``).

One panel per test scenario, the share of training stays whose chest X-rays were withheld
on the x axis (0 is the ordinary reference entry), the primary metric with its 95% CI as
error bars on the y axis, one line per reference model (the same colour in every panel).
Django-free: it takes the dict of
:func:`leaderboard.board.selectors.training_missingness.training_missingness_curve`.
"""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from scoring.plots import plain_text

DODGE = 0.012  # horizontal offset between models' points (share of training stays)
# Plotly's default qualitative colours, fixed so a model keeps its colour across panels.
COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


def training_missingness_figure(curve: dict[str, Any]) -> dict[str, Any] | None:
    """Test primary metric against training-time missingness, per scenario and model."""
    scenarios = [s for s in curve.get("scenarios") or [] if any(
        s in p["scenarios"] for m in curve["models"] for p in m["points"])]  # fmt: skip
    if not scenarios:
        return None
    titles = curve.get("scenario_titles") or {}
    fig = make_subplots(
        rows=1,
        cols=len(scenarios),
        shared_yaxes=True,
        horizontal_spacing=0.06,
        subplot_titles=[plain_text(titles.get(s, s)) for s in scenarios],
    )
    n = len(curve["models"])
    for i, model in enumerate(curve["models"]):
        colour = COLOURS[i % len(COLOURS)]
        # Each model's points a little apart, so that lines and error bars of equal
        # (rounded) figures do not hide one another; the hover gives the true rate.
        shift = (i - (n - 1) / 2) * DODGE
        name = plain_text(model["method_name"])
        for col, scenario in enumerate(scenarios, start=1):
            pts = [p for p in model["points"] if scenario in p["scenarios"]]
            if not pts:
                continue
            x = [round(p["rate"] + shift, 4) for p in pts]
            y = [p["scenarios"][scenario]["value"] for p in pts]
            ci = [p["scenarios"][scenario]["ci"] for p in pts]
            up = [(c[1] - v) if c[1] is not None else 0.0 for c, v in zip(ci, y, strict=True)]
            down = [(v - c[0]) if c[0] is not None else 0.0 for c, v in zip(ci, y, strict=True)]
            fig.add_trace(
                go.Scatter(
                    x=x, y=y, mode="lines+markers", name=name, legendgroup=name,
                    showlegend=col == 1, line={"color": colour}, marker={"color": colour},
                    error_y={"type": "data", "symmetric": False, "array": up,
                             "arrayminus": down, "thickness": 1, "width": 3},
                    customdata=[[p["rate"], c[0], c[1]] for p, c in zip(pts, ci, strict=True)],
                    hovertemplate=f"{name}<br>training images withheld %{{customdata[0]:.0%}}<br>"
                    f"{plain_text(curve['metric_title'])} %{{y}} "
                    "(95% CI %{customdata[1]} to %{customdata[2]})<extra></extra>",
                ),
                row=1,
                col=col,
            )  # fmt: skip
    fig.update_xaxes(title_text="Training stays without their chest X-ray", tickformat=".0%",
                     range=[-0.05, 0.95], dtick=0.1, zeroline=False)  # fmt: skip
    fig.update_yaxes(title_text=plain_text(curve["metric_title"]), row=1, col=1)
    fig.update_layout(
        title="Training-time missingness",
        legend={"orientation": "h", "y": -0.25},
        margin={"t": 70},
        height=430,
    )
    out: dict[str, Any] = json.loads(fig.to_json())
    out.get("layout", {}).pop("template", None)
    return out
