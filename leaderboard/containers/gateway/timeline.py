"""What the gateway reveals and when: a task's test units grouped into steps by prediction
time, and every test input of their stays with the time it becomes known.

Built once per task and scenario from :func:`benchmark_data.sequestered.test_split` (the
whole test split with times). Stays, images and units are named by tokens drawn anew for
every timeline, so no message carries an id, a date or an episode number.

Times (hours since the stay's ICU admission): a time-series row at its ``hours``; a
discretized row ``i`` (hours ``[i, i + 1)``) at ``i + 1``, or at the stay's end for the last,
partial hour; an image at its ``hours``. A step at time ``t`` may reveal an item only when
its time is ``<= t``.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmark_data.sequestered import TestSplit
from benchmark_data.tasks import Task
from benchmark_data.variables import VARIABLE_NAMES
from leaderboard.containers.inputs import is_image_scenario

ERR_SCENARIO = "unknown scenario {scenario!r}; the scenarios are: {known}"


def _tokens(prefix: str, n: int) -> list[str]:
    """``n`` distinct random tokens (12 hex digits after the prefix)."""
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        t = prefix + secrets.token_hex(6)
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


def _row_json(ts: pd.DataFrame, stay_tokens: list[str]) -> list[str]:
    """Each time-series row as a JSON array ``[stay, hours, v1, ..., v17]``, null where blank."""
    cols: list[list[str]] = [
        [f'"{tok}"' for tok in stay_tokens],
        [repr(float(h)) for h in ts["hours"].to_numpy(dtype=np.float64)],
    ]
    for name in VARIABLE_NAMES:
        col = ts[name] if name in ts.columns else pd.Series([None] * len(ts))
        if pd.api.types.is_numeric_dtype(col):
            vals = col.to_numpy(dtype=np.float64)
            cols.append(["null" if v != v else repr(float(v)) for v in vals.tolist()])
        else:
            cache: dict[object, str] = {}
            texts = []
            for v in col.tolist():
                if v not in cache:
                    blank = v is None or (isinstance(v, float) and v != v) or v is pd.NA
                    cache[v] = "null" if blank else json.dumps(str(v))
                texts.append(cache[v])
            cols.append(texts)
    return ["[" + ",".join(parts) + "]" for parts in zip(*cols, strict=True)]


def _concat_ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """``np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)])``, vectorized.

    >>> _concat_ranges(np.array([3, 10]), np.array([5, 12])).tolist()
    [3, 4, 10, 11]
    """
    lengths = np.maximum(stops - starts, 0)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + shift


def _cut(
    key_stay: np.ndarray, key_hours: np.ndarray, stay: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """For items sorted by (stay, hours): per query (stay, t), the index after the last item
    of that stay with hours <= t."""
    if len(key_hours) == 0:
        return np.zeros(len(stay), dtype=np.int64)
    lo, hi = float(key_hours.min()), float(key_hours.max())
    width = hi - lo + 2.0
    keys = key_stay * width + (key_hours - lo)
    q = stay * width + np.clip(t - lo, -0.5, width - 1.5)
    return np.searchsorted(keys, q, side="right").astype(np.int64)


def _reveal_pair(
    pair_stay: np.ndarray, pair_cut: np.ndarray, item_stay: np.ndarray, n_items: int
) -> np.ndarray:
    """Per item (in (stay, time) order): the first pair of its stay (pairs in (stay, step)
    order, cuts non-decreasing) whose cut passes it; -1 when none does."""
    big = n_items + 1
    pkey = pair_stay * big + pair_cut
    ikey = item_stay * big + np.arange(n_items)
    idx = np.searchsorted(pkey, ikey, side="right")
    ok = idx < len(pkey)
    ok[ok] &= pair_stay[idx[ok]] == item_stay[ok]
    return np.where(ok, idx, -1)


@dataclass
class Timeline:
    """The steps of one task and scenario and, per step, what they reveal (precomputed as
    slices, so that a step only encodes and copies; see :mod:`reveal`)."""

    task: Task
    scenario: str
    units: pd.DataFrame  # the units asked (key columns first), in the test split's order
    unit_tokens: list[str]
    unit_stay: np.ndarray  # stay index of each unit
    unit_image: list[str | None]  # token of the unit's image, None when none or withheld
    step_times: np.ndarray
    unit_order: np.ndarray  # units in step order; step k asks unit_order[unit_bounds[k]:...]
    unit_bounds: np.ndarray
    unit_json: list[str]  # per unit of unit_order: {"unit":...,"stay":...,"image":...}
    asked_tokens: list[str]  # per unit of unit_order: its token
    asked_position: dict[str, int]  # unit token -> its place in unit_order
    step_stays: np.ndarray  # stays asked per step
    stay_ids: np.ndarray  # stay index -> stay_id (never sent)
    stay_tokens: list[str]
    stay_end: np.ndarray
    ts_json: list[str]  # revealed time-series rows in reveal order: [stay, hours, v1..v17]
    ts_hours: np.ndarray
    ts_bounds: np.ndarray  # per step, into ts_json
    disc_rows: np.ndarray  # revealed discretized rows in reveal order (little-endian float32)
    disc_bounds: np.ndarray  # per step, into disc_rows
    pair_stay: np.ndarray  # (step, stay) pairs with new discretized hours, in step order
    pair_first: np.ndarray
    pair_hours: np.ndarray
    pair_bounds: np.ndarray  # per step, into the pair arrays
    images: list[tuple[int, str, float, str]]  # revealed images: (stay, token, hours, dicom_id)
    image_bounds: np.ndarray  # per step, into images
    read_image: Callable[[str], bytes]  # dicom_id -> PNG bytes
    image_dicom: dict[str, str] = field(default_factory=dict)  # token -> dicom_id (never sent)

    @property
    def n_steps(self) -> int:
        return len(self.step_times)

    def asked(self, k: int) -> np.ndarray:
        """Unit indices (rows of ``units``) asked at step ``k``, in message order."""
        return self.unit_order[self.unit_bounds[k] : self.unit_bounds[k + 1]]


def _bounds(steps: np.ndarray, n_steps: int) -> np.ndarray:
    """Offsets of each step in items sorted by step."""
    return np.searchsorted(steps, np.arange(n_steps + 1), side="left").astype(np.int64)


def build_timeline(split: TestSplit, task: str, scenario: str) -> Timeline:
    """The timeline of ``task`` in ``scenario``: ``paired`` and ``natural`` ask every unit;
    ``cxr_missing_*`` ask the paired units (those with an image) and never reveal an image
    of the stays the scenario withholds."""
    t = split.bench.task(task)
    known = split.bench.suite.scenarios
    if scenario not in known:
        raise ValueError(ERR_SCENARIO.format(scenario=scenario, known=", ".join(known)))
    units = split.units(t.slug).reset_index(drop=True)
    withheld: set[int] = set()
    if is_image_scenario(split.bench, scenario):
        units = units[units["cxr_dicom_id"].notna()].reset_index(drop=True)
        withheld = {int(s) for s in split.scenarios(t.slug).withheld.get(scenario, ())}

    stays = split.stays
    stay_ids = stays["stay_id"].to_numpy(dtype=np.int64)
    stay_index = pd.Series(np.arange(len(stay_ids)), index=stay_ids)
    stay_tokens = _tokens("s", len(stay_ids))
    unit_stay = stay_index.loc[units["stay_id"].to_numpy(dtype=np.int64)].to_numpy()
    stay_end = stays["end_hours"].to_numpy(dtype=np.float64)

    # Steps, and the units of each in (stay, unit) order.
    hours = units["prediction_hours"].to_numpy(dtype=np.float64)
    step_times, unit_step = np.unique(hours, return_inverse=True)
    n_steps = len(step_times)
    unit_order = np.lexsort((np.arange(len(units)), unit_stay, unit_step))
    unit_bounds = _bounds(unit_step[unit_order], n_steps)

    # (stay, step) pairs: a stay is mentioned at a step when one of its units is asked.
    pairs = np.unique(np.stack([unit_stay, unit_step], axis=1), axis=0)  # by stay, then step
    p_stay, p_step = pairs[:, 0], pairs[:, 1]
    p_time = step_times[p_step]

    # Time series: sorted by (stay, hours); a row goes out at the first pair that passes it.
    ts = split.timeseries()
    ts = ts[ts["stay_id"].isin(stay_index.index)]
    ts = ts.assign(_s=stay_index.loc[ts["stay_id"].to_numpy(dtype=np.int64)].to_numpy())
    ts = ts.sort_values(["_s", "hours"], kind="stable").reset_index(drop=True)
    ts_stay = ts["_s"].to_numpy(dtype=np.int64)
    ts_h = ts["hours"].to_numpy(dtype=np.float64)
    ts_pair = _reveal_pair(p_stay, _cut(ts_stay, ts_h, p_stay, p_time), ts_stay, len(ts))
    shown = np.flatnonzero(ts_pair >= 0)
    ts_step = p_step[ts_pair[shown]]
    order = shown[np.lexsort((shown, ts_stay[shown], ts_step))]
    ts = ts.iloc[order].reset_index(drop=True)
    ts_bounds = _bounds(np.sort(ts_step), n_steps)
    ts_json = _row_json(ts, [stay_tokens[s] for s in ts["_s"].tolist()])

    # Discretized hours: per pair, the rows complete at its time not sent at an earlier pair.
    arr, index = split.discretized()
    offset = np.zeros(len(stay_ids), dtype=np.int64)
    n_hours = np.zeros(len(stay_ids), dtype=np.int64)
    known = index["stay_id"].isin(stay_index.index).to_numpy()
    idx = stay_index.loc[index["stay_id"].to_numpy(dtype=np.int64)[known]].to_numpy()
    offset[idx] = index["offset"].to_numpy(dtype=np.int64)[known]
    n_hours[idx] = index["n_hours"].to_numpy(dtype=np.int64)[known]
    end = stay_end[p_stay]
    whole = np.floor(p_time)
    whole = np.where(p_time >= end, np.maximum(whole, np.ceil(end)), whole)
    done = np.clip(whole, 0, n_hours[p_stay]).astype(np.int64)
    done = np.maximum.accumulate(done + p_stay * (1 << 32)) - p_stay * (1 << 32)  # per stay
    first = np.zeros_like(done)
    same = np.r_[False, p_stay[1:] == p_stay[:-1]]
    first[same] = done[:-1][same[1:]]
    by_step = np.lexsort((p_stay, p_step))
    new = by_step[done[by_step] > first[by_step]]
    rows = _concat_ranges(offset[p_stay[new]] + first[new], offset[p_stay[new]] + done[new])

    # Images (AP, not withheld): sorted by (stay, hours), sent like time-series rows.
    meta = split.cxr_metadata()
    if "view_position" in meta.columns:
        meta = meta[meta["view_position"].astype(str) == "AP"]
    keep = meta["stay_id"].isin(stay_index.index) & ~meta["stay_id"].isin(withheld)
    meta = meta[keep].assign(_s=stay_index.loc[meta.loc[keep, "stay_id"].to_numpy(dtype=np.int64)].to_numpy())  # fmt: skip
    meta = meta.sort_values(["_s", "hours"], kind="stable").reset_index(drop=True)
    im_stay = meta["_s"].to_numpy(dtype=np.int64)
    im_h = meta["hours"].to_numpy(dtype=np.float64)
    im_pair = _reveal_pair(p_stay, _cut(im_stay, im_h, p_stay, p_time), im_stay, len(meta))
    tokens = _tokens("i", len(meta))
    by_dicom = dict(zip(meta["dicom_id"].astype(str).tolist(), tokens, strict=True))
    im_shown = np.flatnonzero(im_pair >= 0)
    im_step = p_step[im_pair[im_shown]]
    im_order = im_shown[np.lexsort((im_shown, im_stay[im_shown], im_step))]
    dicoms = meta["dicom_id"].astype(str).tolist()
    images = [(int(im_stay[i]), tokens[i], float(im_h[i]), dicoms[i]) for i in im_order.tolist()]

    unit_image = [
        None if pd.isna(d) else by_dicom.get(str(d)) for d in units["cxr_dicom_id"].tolist()
    ]
    unit_tokens = _tokens("u", len(units))
    ordered = unit_order.tolist()
    asked_tokens = [unit_tokens[i] for i in ordered]
    unit_json = []
    for i, tok in zip(ordered, asked_tokens, strict=True):
        img = "null" if unit_image[i] is None else f'"{unit_image[i]}"'
        unit_json.append(f'{{"unit":"{tok}","stay":"{stay_tokens[unit_stay[i]]}","image":{img}}}')
    keys = list(t.key_columns)
    rest = [c for c in units.columns if c not in keys]
    return Timeline(
        task=t,
        scenario=scenario,
        units=units[keys + rest],
        unit_tokens=unit_tokens,
        unit_stay=unit_stay,
        unit_image=unit_image,
        step_times=step_times,
        unit_order=unit_order,
        unit_bounds=unit_bounds,
        unit_json=unit_json,
        asked_tokens=asked_tokens,
        asked_position={tok: i for i, tok in enumerate(asked_tokens)},
        step_stays=np.bincount(p_step, minlength=n_steps),
        stay_ids=stay_ids,
        stay_tokens=stay_tokens,
        stay_end=stay_end,
        ts_json=ts_json,
        ts_hours=ts["hours"].to_numpy(dtype=np.float64),
        ts_bounds=ts_bounds,
        disc_rows=np.ascontiguousarray(arr[rows], dtype="<f4"),
        disc_bounds=np.r_[
            0, np.cumsum(np.bincount(p_step[new], weights=(done - first)[new], minlength=n_steps))
        ].astype(np.int64),  # fmt: skip
        pair_stay=p_stay[new],
        pair_first=first[new],
        pair_hours=(done - first)[new],
        pair_bounds=_bounds(p_step[new], n_steps),
        images=images,
        image_bounds=_bounds(np.sort(im_step), n_steps),
        read_image=split.image_bytes,
        image_dicom={tok: d for d, tok in by_dicom.items()},
    )


def complete_hours(n_hours: int, end: float, t: float) -> int:
    """Discretized rows of a stay complete at time ``t``: row ``i`` at ``i + 1``, and the
    stay's last, partial hour (the row holding ``end``) at ``end``.

    >>> complete_hours(10, 9.5, 4.0), complete_hours(10, 9.5, 9.0), complete_hours(10, 9.5, 9.5)
    (4, 9, 10)
    """
    whole = math.floor(t)
    if t >= end:
        whole = max(whole, math.ceil(end))
    return max(0, min(n_hours, whole))
