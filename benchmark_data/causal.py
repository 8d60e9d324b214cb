"""The leak-free public view of the test split (format version 2).

A test file that a participant downloads must not tell when a stay ended, how it ended, or
a label: not alone, and not combined with the files of the other tasks. A time series that
runs to the end of the stay tells its length (and so the length-of-stay label); rows listed
for every hour up to the end tell it too; a stay seen alive at hour 100 did not die before.
So each published test stay is shown only up to one **cutoff**, and the public test unit
lists hold only the units whose prediction time is that cutoff:

- ``mortality`` family: cutoff at 48 h; the in-hospital mortality unit;
- ``hourly`` family (none by default, see ``DEFAULT_SHARES``): cutoff at one whole hour
  ``t`` drawn uniformly from 5 .. 336 (14 days) for a stay still in the ICU at ``t``; the
  decompensation and length-of-stay rows at ``t``;
- ``phenotyping`` family: cutoff at the end of the stay; the phenotyping unit.

Radiology, like decompensation and length of stay, has several prediction times per stay
(each image's time) and is scored through the streaming gateway only. The gateway scores the
**clean** units (:func:`clean_unit_mask`): those of which the public files show nothing past
their prediction time. The
family and hour of a stay are drawn with seeded uniform numbers, independent of its outcome;
a stay that has left the ICU before its family's prediction time falls to phenotyping, whose
prediction time is the end of the stay. A patient may have several stays, and in this data a later stay means the
earlier ones did not end in death: one stay per patient is published, chosen at random.

Every test unit, at every prediction time, remains in the credentialed part
(``credentialed/test/``), where the streaming gateway reveals it in time order.

>>> plan = plan_cutoffs(
...     pd.DataFrame({"stay_id": [1, 2, 3], "subject_id": [7, 8, 8],
...                   "end_hours": [100.5, 20.2, 60.0]}),
...     mortality_stays=np.array([1, 3]),
...     hourly=pd.DataFrame({"stay_id": [1] * 96 + [2] * 16, "period_length":
...                          list(range(5, 101)) + list(range(5, 21))}),
...     rng=np.random.default_rng(0))
>>> plan["published"].tolist()
[1, 0, 1]
>>> bool((plan["cutoff_hours"] <= [100.5, 20.2, 60.0]).all())
True
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmark_data.tasks import CXR_MISSING_LEVELS, get_task

FAMILIES: tuple[str, ...] = ("phenotyping", "mortality", "hourly")
# Chance of each family (phenotyping, mortality, hourly). One prediction time per stay
# leaves too few decompensation and length-of-stay units for a board (at MedMod scale about
# 1% of the hourly rows, a dozen positive decompensation rows), so by default their test
# split is scored only through the streaming gateway, on every hourly row.
DEFAULT_SHARES: tuple[float, float, float] = (0.5, 0.5, 0.0)
MORTALITY_CUTOFF = 48.0
HOURLY_TASKS = ("decompensation", "length-of-stay")
FIRST_HOUR = 5
# Hourly family: the last hour a cutoff may be drawn at (14 days, the last bucket's edge).
HOURLY_HORIZON = 14 * 24


def plan_cutoffs(
    stays: pd.DataFrame,
    *,
    mortality_stays: np.ndarray,
    hourly: pd.DataFrame,
    rng: np.random.Generator,
    shares: tuple[float, float, float] = DEFAULT_SHARES,
    horizon: int = HOURLY_HORIZON,
) -> pd.DataFrame:
    """Family, cutoff and publication of every test stay.

    Parameters
    ----------
    stays
        ``stay_id, subject_id, end_hours`` of every test stay.
    mortality_stays
        Stays with an in-hospital mortality unit (48 h or more in the ICU).
    hourly
        ``stay_id, period_length`` of the stays' length-of-stay rows.
    rng
        The draws: which stay of a patient is published, each stay's family, the hour.
    shares
        Chance of each family (phenotyping, mortality, hourly) for every stay.
    horizon
        Hourly family: the hour ``t`` is drawn uniformly from ``5 .. horizon``, the same for
        every stay; a stay that has left the ICU by ``t`` falls to phenotyping. Among the
        stays with a unit at ``t`` every stay still in the ICU at ``t`` is then equally
        likely, as in the full hourly unit lists: the draw adds no link between ``t`` and the
        outcome that the data does not have.

    Returns ``stay_id, family, cutoff_hours, published`` (0/1) in the order of ``stays``;
    unpublished stays keep a family and cutoff (unused) so the table is complete.
    """
    n = len(stays)
    sid = stays["stay_id"].to_numpy(dtype=np.int64)
    # One stay per patient: a random key per stay, the smallest of each patient published.
    key = rng.random(n)
    subject = stays["subject_id"].to_numpy()
    order = np.lexsort((key, subject))
    first = np.r_[True, subject[order][1:] != subject[order][:-1]]
    published = np.zeros(n, dtype=np.int64)
    published[order[first]] = 1

    u = rng.random(n)
    hour = rng.integers(FIRST_HOUR, horizon + 1, size=n)
    edges = np.cumsum(shares) / float(np.sum(shares))
    family = np.searchsorted(edges, u, side="right").clip(0, 2)
    last_row = hourly.groupby("stay_id")["period_length"].max()
    last = pd.Series(sid).map(last_row).fillna(0).to_numpy(dtype=np.int64)
    family = np.where((family == 1) & ~np.isin(sid, mortality_stays), 0, family)
    family = np.where((family == 2) & (hour > last), 0, family)

    cutoff = stays["end_hours"].to_numpy(dtype=np.float64).copy()
    cutoff[family == 1] = MORTALITY_CUTOFF
    cutoff[family == 2] = hour[family == 2]
    return pd.DataFrame({
        "stay_id": sid,
        "family": np.asarray(FAMILIES, dtype=object)[family],
        "cutoff_hours": np.round(cutoff, 6),
        "published": published,
    })  # fmt: skip


def public_unit_mask(task: str, units: pd.DataFrame, plan: pd.DataFrame) -> np.ndarray:
    """Which of a task's test units (with ``stay_id`` and ``prediction_hours``) are in the
    public test unit list: units of published stays at their stay's cutoff, in the task's
    family (radiology: images at or before the cutoff)."""
    slug = get_task(task).slug
    p = plan.set_index("stay_id")
    stay = units["stay_id"]
    published = stay.map(p["published"]).fillna(0).to_numpy(dtype=bool)
    family = stay.map(p["family"]).to_numpy(dtype=object)
    cutoff = stay.map(p["cutoff_hours"]).to_numpy(dtype=np.float64)
    at = units["prediction_hours"].to_numpy(dtype=np.float64)
    if slug == "radiology":
        # An image's unit would see the stay's EHR and later images up to the cutoff, past
        # the image's own time (leak probes: macro AUROC 0.53 from them alone): radiology,
        # like the hourly tasks, is scored through the gateway only.
        return np.zeros(len(units), dtype=bool)
    same_time = np.abs(at - cutoff) < 1e-6
    if slug == "in-hospital-mortality":
        return published & (family == "mortality") & same_time
    if slug == "phenotyping":
        return published & (family == "phenotyping")
    # The hourly family's units only: the mortality family's rows at t = 48 would make the
    # hourly boards a board of hour 48 alone.
    return published & (family == "hourly") & same_time


def clean_unit_mask(units: pd.DataFrame, plan: pd.DataFrame) -> np.ndarray:
    """Which test units the public files show nothing of past their prediction time: units
    of unpublished stays, and units predicted at or after their stay's cutoff.

    Only these are scored through the gateway: a model could carry a table made from the
    public files (the stay seen alive at its cutoff, its later images) and look a unit up
    by what the gateway reveals of it.
    """
    p = plan.set_index("stay_id")
    published = units["stay_id"].map(p["published"]).fillna(0).to_numpy() == 1
    cutoff = units["stay_id"].map(p["cutoff_hours"]).to_numpy(dtype=np.float64)
    at = units["prediction_hours"].to_numpy(dtype=np.float64)
    return ~published | (cutoff <= at + 1e-6)


def cutoff_of(stay_ids: pd.Series | np.ndarray, plan: pd.DataFrame) -> np.ndarray:
    """Each stay's public cutoff in hours; NaN for stays that are not published."""
    p = plan.set_index("stay_id")
    shown = p["cutoff_hours"].where(p["published"] == 1)
    return pd.Series(stay_ids).map(shown).to_numpy(dtype=np.float64)


def cut_timeseries(ts: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """The rows of published stays taken at or before their cutoff."""
    cut = cutoff_of(ts["stay_id"], plan)
    keep = ts["hours"].to_numpy(dtype=np.float64) <= cut  # NaN (unpublished) is False
    return ts[keep].reset_index(drop=True)


def cut_discretized(arr: np.ndarray, index: pd.DataFrame, plan: pd.DataFrame) -> tuple[
    np.ndarray, pd.DataFrame
]:  # fmt: skip
    """The hourly rows of published stays complete by their cutoff (rows ``0 .. ceil(cutoff)
    - 1``), stacked in the index's order; returns the array and ``stay_id, n_hours``."""
    cut = cutoff_of(index["stay_id"], plan)
    keep_stay = ~np.isnan(cut)
    n_full = index["n_hours"].to_numpy(dtype=np.int64)
    n_pub = np.where(keep_stay, np.minimum(n_full, np.ceil(np.nan_to_num(cut))), 0)
    n_pub = n_pub.astype(np.int64)
    offsets = np.r_[0, np.cumsum(n_full)[:-1]]
    rows = np.concatenate(
        [np.arange(o, o + k) for o, k in zip(offsets, n_pub, strict=True) if k > 0]
        or [np.zeros(0, dtype=np.int64)]
    )
    out_index = pd.DataFrame({
        "stay_id": index["stay_id"].to_numpy()[keep_stay], "n_hours": n_pub[keep_stay],
    })  # fmt: skip
    return arr[rows], out_index


def image_published(meta: pd.DataFrame, plan: pd.DataFrame) -> np.ndarray:
    """Which test images (``stay_id, hours``) the public files show."""
    return meta["hours"].to_numpy(dtype=np.float64) <= cutoff_of(meta["stay_id"], plan) + 1e-9


def stratified_scenarios(
    units: pd.DataFrame, public: np.ndarray, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scenario tables of every paired test stay of a task and of the public ones.

    The stays paired in the public units are permuted and nested on their own, the other
    paired stays likewise, so the public table is the whole table restricted to the public
    stays and both withhold exactly 25/50/75/100% of their stays.
    """
    paired = units["cxr_dicom_id"].notna().to_numpy()
    stay = units["stay_id"].to_numpy()
    pub_stays = np.unique(stay[paired & public])
    other = np.setdiff1d(np.unique(stay[paired]), pub_stays)
    parts = []
    for group in (pub_stays, other):
        perm = rng.permutation(group)
        df = pd.DataFrame({"stay_id": group})
        for p in CXR_MISSING_LEVELS:
            k = len(group) if p == 100 else math.floor(p * len(group) / 100 + 0.5)
            df[f"cxr_missing_{p}"] = np.isin(group, perm[:k]).astype(np.int64)
        parts.append(df)
    whole = pd.concat(parts, ignore_index=True).sort_values("stay_id", kind="stable")
    return whole.reset_index(drop=True), parts[0]


def scored_on(counts: dict[str, dict[str, int]]) -> dict[str, str]:
    """Which test units each task is scored on: ``public`` (the public test unit list, for
    every kind of entry), or ``all`` (every clean test unit, :func:`clean_unit_mask`, only
    through the streaming gateway) when the public list is empty."""
    return {task: "public" if c.get("test", 0) > 0 else "all" for task, c in counts.items()}


__all__ = [
    "DEFAULT_SHARES",
    "FAMILIES",
    "MORTALITY_CUTOFF",
    "clean_unit_mask",
    "cut_discretized",
    "cut_timeseries",
    "cutoff_of",
    "image_published",
    "plan_cutoffs",
    "public_unit_mask",
    "scored_on",
    "stratified_scenarios",
]
