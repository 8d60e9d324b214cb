"""Plotly figures (as plain JSON dicts) built from a report's aggregates only.

Each function returns ``{"data": [...], "layout": {...}}`` ready for ``Plotly.newPlot``; the
default template is left out so reports stay small and the page's theme applies.

>>> fig = forest([{"label": "A", "value": 0.8, "ci": [0.75, 0.85]}], metric="auroc")
>>> fig["data"][0]["type"]
'scatter'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from benchmark_data.tasks import METRICS

BAND_FILL = "rgba(31, 119, 180, 0.18)"
LINE = "rgb(31, 119, 180)"
BASELINE = "rgb(127, 127, 127)"


def _to_json(fig: go.Figure) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(fig.to_json())
    out.get("layout", {}).pop("template", None)
    return out


def plain_text(text: Any) -> str:
    """``text`` as Plotly shows it literally: its pseudo-HTML markup made inert.

    Plotly renders a subset of HTML in every text it draws (trace names, tick labels, hover
    text, titles): ``<a href>`` becomes a live link, ``<span style>`` styles text, ``<br>``,
    ``<b>`` and ``<i>`` format it, and entities such as ``&lt;`` are decoded. Names typed by
    participants must reach a figure through this function, so that they read as typed and
    cannot pose as a link or as the platform's own labels.

    >>> plain_text('<a href="https://evil.example/">Official</a> & co')
    '&lt;a href="https://evil.example/"&gt;Official&lt;/a&gt; &amp; co'
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _title(metric: str) -> str:
    spec = METRICS.get(metric)
    return spec.title if spec else metric


def _band(
    x: Sequence[float], lo: Sequence[float], hi: Sequence[float], name: str
) -> list[go.Scatter]:
    return [
        go.Scatter(x=list(x), y=list(hi), mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"),
        go.Scatter(
            x=list(x), y=list(lo), mode="lines", line={"width": 0}, fill="tonexty",
            fillcolor=BAND_FILL, name=name, hoverinfo="skip",
        ),
    ]  # fmt: skip


def curve_figure(curve: dict[str, Any], *, kind: str) -> dict[str, Any]:
    """ROC (``kind="roc"``) or precision-recall (``kind="pr"``) curve with its 95% band."""
    if kind == "roc":
        x, y, lo, hi = curve["fpr"], curve["tpr"], curve["tpr_low"], curve["tpr_high"]
        xt, yt, title = "False positive rate", "True positive rate", "ROC curve"
    else:
        x, y, lo, hi = (
            curve["recall"],
            curve["precision"],
            curve["precision_low"],
            curve["precision_high"],
        )
        xt, yt, title = "Recall", "Precision", "Precision-recall curve"
    fig = go.Figure(
        [
            *_band(x, lo, hi, "95% band"),
            go.Scatter(x=x, y=y, mode="lines", line={"color": LINE}, name="curve"),
        ]
    )
    if kind == "roc":
        fig.add_trace(
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line={"dash": "dot", "color": BASELINE},
                name="chance",
            )
        )
    fig.update_layout(
        title=title,
        xaxis={"title": xt, "range": [0, 1]},
        yaxis={"title": yt, "range": [0, 1.02]},
        margin={"t": 40},
    )
    return _to_json(fig)


def reliability_figure(rel: dict[str, Any]) -> dict[str, Any]:
    """Reliability diagram: observed event rate per bin of predicted probability."""
    bins = [b for b in rel["bins"] if b.get("count")]
    x = [b["mean_predicted"] for b in bins]
    y = [b["observed_rate"] for b in bins]
    err = None
    if bins and "observed_ci" in bins[0]:
        err = {
            "type": "data",
            "symmetric": False,
            "array": [
                (b["observed_ci"][1] or b["observed_rate"]) - b["observed_rate"] for b in bins
            ],
            "arrayminus": [
                b["observed_rate"] - (b["observed_ci"][0] or b["observed_rate"]) for b in bins
            ],
        }
    fig = go.Figure(
        [
            go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": BASELINE}, name="perfect calibration"),
            go.Scatter(x=x, y=y, mode="lines+markers", error_y=err, line={"color": LINE}, name="observed",
                       text=[f"n={b['count']}" for b in bins]),
        ]
    )  # fmt: skip
    fig.update_layout(title="Reliability", xaxis={"title": "Mean predicted probability", "range": [0, 1]},
                      yaxis={"title": "Observed rate", "range": [0, 1]}, margin={"t": 40})  # fmt: skip
    return _to_json(fig)


def fairness_figure(fairness: dict[str, Any]) -> dict[str, Any] | None:
    """Primary metric per demographic group with 95% CIs, one trace per attribute."""
    traces = []
    for attr, entry in fairness.get("attributes", {}).items():
        groups = entry.get("groups", {})
        if not groups:
            continue
        names = list(groups)
        vals = [groups[g]["value"] for g in names]
        hi = [
            (groups[g]["ci"][1] if groups[g]["ci"][1] is not None else v)
            for g, v in zip(names, vals, strict=True)
        ]
        lo = [
            (groups[g]["ci"][0] if groups[g]["ci"][0] is not None else v)
            for g, v in zip(names, vals, strict=True)
        ]
        traces.append(
            go.Scatter(
                x=[plain_text(f"{attr}: {g}") for g in names], y=vals, mode="markers",
                name=plain_text(attr),
                error_y={"type": "data", "symmetric": False,
                         "array": [h - v for h, v in zip(hi, vals, strict=True)],
                         "arrayminus": [v - lo_ for v, lo_ in zip(vals, lo, strict=True)]},
                text=[f"n={groups[g]['n_units']}" for g in names],
            )
        )  # fmt: skip
    if not traces:
        return None
    fig = go.Figure(traces)
    fig.update_layout(
        title="By group", yaxis={"title": _title(fairness.get("metric", ""))}, margin={"t": 40}
    )
    return _to_json(fig)


def group_reliability_figure(fairness: dict[str, Any]) -> dict[str, Any] | None:
    """Reliability diagram of each group (observed rate per shown bin), one attribute at a
    time: a menu above the plot picks the attribute (Plotly's own buttons, no page script).
    Only groups with at least two shown bins are drawn."""
    traces: list[Any] = []
    owners: list[str] = []
    for attr, entry in (fairness.get("attributes") or {}).items():
        for g, ge in (entry.get("groups") or {}).items():
            bins = [b for b in (ge.get("reliability") or {}).get("bins", [])
                    if b.get("observed_rate") is not None]  # fmt: skip
            if len(bins) < 2:
                continue
            traces.append(
                go.Scatter(
                    x=[b["mean_predicted"] for b in bins], y=[b["observed_rate"] for b in bins],
                    mode="lines+markers", name=plain_text(g), visible=not owners or owners[0] == attr,
                    text=[f"n={b['count']}" for b in bins],
                )
            )  # fmt: skip
            owners.append(attr)
    if not traces:
        return None
    attrs = list(dict.fromkeys(owners))
    diagonal = go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                          line={"dash": "dot", "color": BASELINE})  # fmt: skip
    fig = go.Figure([diagonal, *traces])
    buttons = [
        {"label": plain_text(a), "method": "restyle",
         "args": [{"visible": [True, *(o == a for o in owners)]}]}
        for a in attrs
    ]  # fmt: skip
    fig.update_layout(
        title="Reliability by group",
        xaxis={"title": "Mean predicted probability", "range": [0, 1]},
        yaxis={"title": "Observed rate", "range": [0, 1]},
        margin={"t": 70},
        updatemenus=[
            {"buttons": buttons, "x": 0, "xanchor": "left", "y": 1.12, "yanchor": "bottom"}
        ]
        if len(attrs) > 1
        else [],
    )
    return _to_json(fig)


def robustness_figure(rob: dict[str, Any]) -> dict[str, Any] | None:
    """Primary metric against the fraction of units with an input withheld, with 95% CIs:
    one line per withheld modality (MedMod: the chest X-ray)."""
    curves = rob.get("modalities") or {rob.get("modality") or "cxr": rob}
    traces: list[Any] = []
    titles = []
    for slug, c in curves.items():
        curve = c.get("curve", [])
        if len(curve) < 2:
            continue
        title = c.get("modality_title") or ("Chest X-ray" if slug == "cxr" else slug)
        titles.append(title)
        x = [p["fraction_withheld"] for p in curve]
        y = [p["value"] for p in curve]
        lo = [p["ci"][0] if p["ci"][0] is not None else p["value"] for p in curve]
        hi = [p["ci"][1] if p["ci"][1] is not None else p["value"] for p in curve]
        name = _title(rob["metric"]) if len(curves) == 1 else title
        traces += [*_band(x, lo, hi, "95% CI" if len(curves) == 1 else f"{title}: 95% CI"),
                   go.Scatter(x=x, y=y, mode="lines+markers", name=name,
                              line={"color": LINE} if len(curves) == 1 else {})]  # fmt: skip
    if not traces:
        return None
    if titles == ["Chest X-ray"]:
        heading, axis = "Missing chest X-rays", "Fraction of X-rays withheld"
    elif len(titles) == 1:
        heading, axis = f"Missing {titles[0].lower()}", "Fraction of units with it withheld"
    else:
        heading, axis = "Missing inputs", "Fraction of units with the input withheld"
    fig = go.Figure(traces)
    fig.update_layout(title=heading, xaxis={"title": axis, "tickformat": ".0%"},
                      yaxis={"title": _title(rob["metric"])}, margin={"t": 40})  # fmt: skip
    return _to_json(fig)


def report_figures(report: dict[str, Any]) -> dict[str, Any]:
    """All figures of a report that its data supports, by name."""
    out: dict[str, Any] = {}
    curves = report.get("curves", {})
    if "roc" in curves:
        out["roc"] = curve_figure(curves["roc"], kind="roc")
    if "pr" in curves:
        out["pr"] = curve_figure(curves["pr"], kind="pr")
    if "reliability" in curves:
        out["reliability"] = reliability_figure(curves["reliability"])
    fair = fairness_figure(report.get("fairness", {}))
    if fair:
        out["fairness"] = fair
    by_group = group_reliability_figure(report.get("fairness", {}))
    if by_group:
        out["reliability_by_group"] = by_group
    rob = robustness_figure(report.get("robustness", {}))
    if rob:
        out["robustness"] = rob
    return out


def forest(rows: Sequence[dict[str, Any]], *, metric: str) -> dict[str, Any]:
    """Forest plot across entries: point value and 95% CI per entry, best at the top.

    ``rows``: dicts with ``label``, ``value``, ``ci`` ([low, high]) and optionally
    ``is_baseline``, in display order. Labels are shown as plain text (:func:`plain_text`):
    on the axis cut to :data:`FOREST_LABEL_CHARS` characters, whole when hovered. Entries
    sit at positions 0, 1, ... so that two entries with the same name keep a row each.
    """
    labels = [str(r["label"]) for r in rows]
    vals = [r["value"] for r in rows]
    lo = [r["ci"][0] if r["ci"][0] is not None else r["value"] for r in rows]
    hi = [r["ci"][1] if r["ci"][1] is not None else r["value"] for r in rows]
    colors = [BASELINE if r.get("is_baseline") else LINE for r in rows]
    fig = go.Figure(
        go.Scatter(
            x=vals, y=list(range(len(rows))), mode="markers",
            marker={"color": colors, "size": 9},
            error_x={"type": "data", "symmetric": False,
                     "array": [h - v for h, v in zip(hi, vals, strict=True)],
                     "arrayminus": [v - lo_ for v, lo_ in zip(vals, lo, strict=True)]},
            text=[plain_text(label) for label in labels],
            customdata=list(zip(lo, hi, strict=True)),
            hovertemplate="%{text}: %{x:.3f} (95% CI %{customdata[0]:.3f} to "
                          "%{customdata[1]:.3f})<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        title=f"{_title(metric)} with 95% CI",
        xaxis={"title": _title(metric)},
        yaxis={
            "autorange": "reversed",
            "tickmode": "array",
            "tickvals": list(range(len(rows))),
            "ticktext": [plain_text(_shorten(label, FOREST_LABEL_CHARS)) for label in labels],
            "automargin": True,
        },
        height=max(240, 28 * len(rows) + 100),
        margin={"t": 40, "l": 10},
    )
    return _to_json(fig)


# The longest entry name the forest plot's axis shows whole; longer names are cut with "…".
FOREST_LABEL_CHARS = 40


def _shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


# One colour per entry of a comparison (at most five), Plotly's first five.
ENTRY_COLOURS = ("31, 119, 180", "255, 127, 14", "44, 160, 44", "214, 39, 40", "148, 103, 189")


def overlay_figure(curves: Sequence[tuple[str, dict[str, Any]]], *, kind: str) -> dict[str, Any]:
    """Several entries' ROC (``kind="roc"``), precision-recall (``"pr"``) or reliability
    (``"reliability"``) curves in one figure, one colour per entry; ROC and PR curves with
    their 95% band. ``curves``: (name, curve) pairs, the curves as a participant report
    holds them (``scoring.disclosure``); names are shown as plain text.

    >>> c = {"fpr": [0, 1], "tpr": [0, 1], "tpr_low": [0, 1], "tpr_high": [0, 1]}
    >>> fig = overlay_figure([("A", c), ("B <i>", c)], kind="roc")
    >>> [t["name"] for t in fig["data"] if t.get("showlegend", True)]
    ['A', 'B &lt;i&gt;', 'chance']
    """
    traces: list[Any] = []
    for i, (name, curve) in enumerate(curves):
        colour = ENTRY_COLOURS[i % len(ENTRY_COLOURS)]
        label = plain_text(name)
        line = {"color": f"rgb({colour})"}
        if kind == "reliability":
            bins = [b for b in curve.get("bins", []) if b.get("count")]
            traces.append(
                go.Scatter(
                    x=[b["mean_predicted"] for b in bins], y=[b["observed_rate"] for b in bins],
                    mode="lines+markers", name=label, line=line, legendgroup=str(i),
                    text=[f"n={b['count']}" for b in bins],
                )
            )  # fmt: skip
            continue
        x_name, y_name = ("fpr", "tpr") if kind == "roc" else ("recall", "precision")
        x = list(curve[x_name])
        traces += [
            go.Scatter(x=x, y=list(curve[y_name]), mode="lines", name=label, line=line,
                       legendgroup=str(i)),
            go.Scatter(x=x, y=list(curve[f"{y_name}_high"]), mode="lines", line={"width": 0},
                       showlegend=False, hoverinfo="skip", legendgroup=str(i)),
            go.Scatter(x=x, y=list(curve[f"{y_name}_low"]), mode="lines", line={"width": 0},
                       fill="tonexty", fillcolor=f"rgba({colour}, 0.12)",
                       name=f"{label}: 95% band", hoverinfo="skip", legendgroup=str(i),
                       showlegend=False),
        ]  # fmt: skip
    if kind in ("roc", "reliability"):
        traces.append(
            go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": BASELINE},
                       name="chance" if kind == "roc" else "perfect calibration")
        )  # fmt: skip
    title, xt, yt = {
        "roc": ("ROC curves", "False positive rate", "True positive rate"),
        "pr": ("Precision-recall curves", "Recall", "Precision"),
        "reliability": ("Reliability", "Mean predicted probability", "Observed rate"),
    }[kind]
    fig = go.Figure(traces)
    fig.update_layout(
        title=title,
        xaxis={"title": xt, "range": [0, 1]},
        yaxis={"title": yt, "range": [0, 1.02]},
        # The legend under the axis title, the plot's height grown to hold it.
        legend={"orientation": "h", "x": 0, "y": -0.18, "yanchor": "top"},
        height=460 + 22 * len(curves),
        margin={"t": 40},
    )
    return _to_json(fig)
