"""Properties of what the gateway reveals, checked on the messages themselves against the
test split: nothing after a step's time, no stay before its first unit, everything up to
its last unit, no identifier, the same bytes as the source."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from benchmark_data import Benchmark
from benchmark_data.sequestered import test_split
from benchmark_data.variables import N_FEATURES
from leaderboard.containers.gateway import Revealer, build_timeline
from leaderboard.containers.gateway.timeline import complete_hours

TOKEN = re.compile(r"^[sui][0-9a-f]{12}$")
STEP_KEYS = {"type", "step", "time", "timeseries", "discretized", "images", "units"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "scenario"),
    [
        ("in-hospital-mortality", "paired"),
        ("decompensation", "paired"),
        ("length-of-stay", "cxr_missing_50"),
        ("phenotyping", "paired"),
        ("radiology", "paired"),
        ("radiology", "cxr_missing_75"),
    ],
)
def test_nothing_is_revealed_before_its_time_or_before_a_stays_first_unit(
    demo_bench: Benchmark, task: str, scenario: str
):
    split = test_split(demo_bench)
    tl = build_timeline(split, task, scenario)
    token_stay = {tok: int(tl.stay_ids[i]) for i, tok in enumerate(tl.stay_tokens)}
    end = dict(zip(split.stays["stay_id"].astype(int), split.stays["end_hours"], strict=True))
    meta = split.cxr_metadata().set_index("dicom_id")
    withheld = {int(s) for s in split.scenarios(task).withheld.get(scenario, ())}
    ts = split.timeseries()
    arr, index = split.discretized()
    index = index.set_index("stay_id")

    unit_times = split.units(task).groupby("stay_id")["prediction_hours"]
    first_unit, last_unit = unit_times.min(), unit_times.max()
    rows_seen: dict[int, list[float]] = {}
    hours_seen: dict[int, int] = {}
    revealer = Revealer(tl)
    last_time = -np.inf
    for k in range(tl.n_steps):
        raw, asked = revealer.step(k)
        msg = json.loads(raw)
        assert set(msg) <= STEP_KEYS and msg["step"] == k
        t = msg["time"]
        assert t > last_time  # steps in increasing time
        last_time = t
        units = msg["units"]
        assert [u["unit"] for u in units] == asked
        asked_stays = {token_stay[u["stay"]] for u in units}
        mentioned: set[int] = set()
        for row in msg.get("timeseries", ()):
            stay = token_stay[row[0]]
            mentioned.add(stay)
            assert len(row) == 19 and row[1] <= t
            rows_seen.setdefault(stay, []).append(row[1])
        disc = msg.get("discretized")
        if disc:
            data = np.frombuffer(base64.b64decode(disc["data"]), dtype="<f4")
            data = data.reshape(-1, N_FEATURES)
            at = 0
            for tok, first, n in zip(disc["stays"], disc["first_hour"], disc["hours"], strict=True):
                stay = token_stay[tok]
                mentioned.add(stay)
                assert first == hours_seen.get(stay, 0)  # contiguous, never twice
                done = first + n
                assert done <= complete_hours(10**9, end[stay], t)  # last row complete by t
                offset = int(index.loc[stay, "offset"])
                np.testing.assert_array_equal(
                    data[at : at + n], arr[offset + first : offset + done]
                )
                hours_seen[stay] = done
                at += n
            assert at == len(data)
        for img in msg.get("images", ()):
            stay = token_stay[img["stay"]]
            mentioned.add(stay)
            assert stay not in withheld
            dicom = tl.image_dicom[img["image"]]
            assert float(meta.loc[dicom, "hours"]) <= t and img["hours"] <= t
            assert base64.b64decode(img["png"]) == split.image_bytes(dicom)
        assert mentioned <= asked_stays
        for stay in asked_stays:
            assert first_unit[stay] <= t  # never mentioned before its first unit
        for u in units:
            assert TOKEN.match(u["unit"]) and TOKEN.match(u["stay"])
            if token_stay[u["stay"]] in withheld:
                assert u["image"] is None

    # Everything of a stay up to its last unit was revealed, once, in order.
    for stay, times in rows_seen.items():
        source = ts.loc[ts["stay_id"] == stay, "hours"].to_numpy()
        want = np.sort(source[source <= last_unit[stay]])
        np.testing.assert_array_equal(np.asarray(times), want)
    for stay, done in hours_seen.items():
        n = int(index.loc[stay, "n_hours"])
        assert done == complete_hours(n, end[stay], float(last_unit[stay]))
    text = b"".join(Revealer(tl).step(k)[0] for k in range(min(3, tl.n_steps))).decode()
    for stay in list(token_stay.values())[:50]:
        assert f'"{stay}"' not in text and f"{stay}," not in text
