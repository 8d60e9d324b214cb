"""The ``step`` messages of a run: for the stays asked at a step, what became known since
they were last asked, and the units to predict.

A stay is mentioned only at steps that ask one of its units; everything of it with a time
at or before the step's time that was not sent before is sent then. The message is put
together from pieces encoded once (time-series rows as JSON arrays, discretized hours as
base64 of little-endian float32, PNG images as base64), so a step costs little more than
copying the bytes it reveals.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from leaderboard.containers.gateway.timeline import Timeline


@dataclass
class Revealed:
    """Bytes and items revealed, by kind (bytes of their encoded form in the messages)."""

    message_bytes: int = 0
    timeseries_bytes: int = 0
    discretized_bytes: int = 0
    image_bytes: int = 0
    timeseries_rows: int = 0
    discretized_hours: int = 0
    images: int = 0
    stay_mentions: int = 0
    per_step_stays: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "total": self.message_bytes,
            "timeseries": self.timeseries_bytes,
            "discretized": self.discretized_bytes,
            "images": self.image_bytes,
            "timeseries_rows": self.timeseries_rows,
            "discretized_hours": self.discretized_hours,
            "image_count": self.images,
            "stay_mentions": self.stay_mentions,
        }


class Revealer:
    """Puts the step messages of a timeline together, one step at a time.

    A step message, on one line::

        {"type": "step", "step": 7, "time": 12.0,
         "timeseries": [["s3f...", 11.25, null, 61.0, ...], ...],
         "discretized": {"stays": ["s3f...", ...], "first_hour": [11, ...], "hours": [1, ...],
                         "data": "<base64 of little-endian float32, 76 per hour>"},
         "images": [{"stay": "s3f...", "image": "i9c...", "hours": 10.5, "png": "<base64>"}],
         "units": [{"unit": "u1a...", "stay": "s3f...", "image": "i9c..." or null}, ...]}
    """

    def __init__(self, timeline: Timeline) -> None:
        self.tl = timeline
        self.revealed = Revealed()

    def step(self, k: int) -> tuple[bytes, list[str]]:
        """The message of step ``k`` and the unit tokens it asks, in message order."""
        tl, rv = self.tl, self.revealed
        tokens = tl.stay_tokens
        out = [f'{{"type":"step","step":{k},"time":{float(tl.step_times[k])!r}']
        a, b = int(tl.ts_bounds[k]), int(tl.ts_bounds[k + 1])
        if b > a:
            rows = ",".join(tl.ts_json[a:b])
            out += [',"timeseries":[', rows, "]"]
            rv.timeseries_bytes += len(rows) + 2
            rv.timeseries_rows += b - a
        a, b = int(tl.pair_bounds[k]), int(tl.pair_bounds[k + 1])
        if b > a:
            r0, r1 = int(tl.disc_bounds[k]), int(tl.disc_bounds[k + 1])
            data = base64.b64encode(tl.disc_rows[r0:r1].tobytes()).decode()
            stays = json.dumps([tokens[s] for s in tl.pair_stay[a:b].tolist()])
            out += [',"discretized":{"stays":', stays,
                    ',"first_hour":', json.dumps(tl.pair_first[a:b].tolist()),
                    ',"hours":', json.dumps(tl.pair_hours[a:b].tolist()),
                    ',"data":"', data, '"}']  # fmt: skip
            rv.discretized_bytes += len(data)
            rv.discretized_hours += r1 - r0
        a, b = int(tl.image_bounds[k]), int(tl.image_bounds[k + 1])
        if b > a:
            shown = []
            for stay, tok, hours, dicom in tl.images[a:b]:
                png = base64.b64encode(tl.read_image(dicom)).decode()
                shown.append(f'{{"stay":"{tokens[stay]}","image":"{tok}","hours":{hours!r},"png":"{png}"}}')  # fmt: skip
                rv.image_bytes += len(png)
            out += [',"images":[', ",".join(shown), "]"]
            rv.images += b - a
        a, b = int(tl.unit_bounds[k]), int(tl.unit_bounds[k + 1])
        out += [',"units":[', ",".join(tl.unit_json[a:b]), "]}\n"]
        message = "".join(out).encode()
        asked = tl.asked_tokens[a:b]
        n_stays = int(tl.step_stays[k])
        rv.message_bytes += len(message)
        rv.stay_mentions += n_stays
        rv.per_step_stays.append(n_stays)
        return message, asked
