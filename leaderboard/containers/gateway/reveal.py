"""The ``step`` messages of a run: for the stays asked at a step, what became known since
they were last asked, and the units to predict.

A stay is mentioned only at steps that ask one of its units; everything of it with a time
at or before the step's time that was not sent before is sent then. The message is put
together from pieces encoded once (time-series rows as JSON arrays, discretized hours as
base64 of little-endian float32, PNG images as base64), so a step costs little more than
copying the bytes it reveals. The images of the coming steps are read (and checked against
the manifest) and encoded on a thread of their own while the model works on the current
step; that thread's CPU time is counted apart (:attr:`Revealer.prefetch_cpu_seconds`).
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import weakref
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


# Steps with images the feed may encode ahead of the step being asked (0: none, every
# step encodes its own images).
STEPS_AHEAD = 16


_Pieces = tuple[list[str], int]  # a step's revealed images as JSON objects, their base64 bytes


def _image_pieces(tl: Timeline, a: int, b: int) -> _Pieces:
    """The JSON objects of revealed images ``a:b`` and their base64 bytes."""
    tokens = tl.stay_tokens
    pieces, n = [], 0
    for stay, tok, hours, dicom in tl.images[a:b]:
        png = base64.b64encode(tl.read_image(dicom)).decode()
        pieces.append(f'{{"stay":"{tokens[stay]}","image":"{tok}","hours":{hours!r},"png":"{png}"}}')  # fmt: skip
        n += len(png)
    return pieces, n


def _encode_ahead(
    tl: Timeline, steps: list[int], out: queue.Queue[tuple[int, _Pieces | Exception]],
    stop: threading.Event, cpu: list[float],
) -> None:  # fmt: skip
    """The feed's thread: it holds no reference to the feed, so a feed dropped unclosed is
    collected and its finalizer stops the thread."""
    c0 = time.thread_time()
    for k in steps:
        try:
            item: _Pieces | Exception = _image_pieces(tl, int(tl.image_bounds[k]), int(tl.image_bounds[k + 1]))  # fmt: skip
        except Exception as exc:  # handed to the step that needs it
            item = exc
        cpu[0] = time.thread_time() - c0
        while not stop.is_set():
            try:
                out.put((k, item), timeout=0.2)
                break
            except queue.Full:
                continue
        if stop.is_set() or isinstance(item, Exception):
            return


class _ImageFeed:
    """Encodes the images of the steps that reveal any, in step order, up to
    :data:`STEPS_AHEAD` steps ahead of the one taken. A failure to read an image is raised
    at the step that needed it."""

    def __init__(self, tl: Timeline) -> None:
        bounds = tl.image_bounds
        steps = [int(k) for k in (bounds[1:] > bounds[:-1]).nonzero()[0]]
        self._cpu = [0.0]
        self._queue: queue.Queue[tuple[int, _Pieces | Exception]] = queue.Queue(maxsize=STEPS_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_encode_ahead, args=(tl, steps, self._queue, self._stop, self._cpu),
            name="gateway-images", daemon=True,
        )  # fmt: skip
        weakref.finalize(self, self._stop.set)
        self._thread.start()

    @property
    def cpu_seconds(self) -> float:
        return self._cpu[0]

    def take(self, k: int) -> tuple[list[str], int] | None:
        """The images of step ``k``; None when the feed has passed it or stopped."""
        while not self._stop.is_set() and (self._thread.is_alive() or not self._queue.empty()):
            try:
                got, item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if isinstance(item, Exception):
                raise item
            if got == k:
                return item
            if got > k:  # asked out of order: the feed cannot serve it
                self.close()
                return None
        return None

    def close(self) -> None:
        self._stop.set()


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

    def __init__(self, timeline: Timeline, *, prefetch: bool = True) -> None:
        self.tl = timeline
        self.revealed = Revealed()
        ahead = prefetch and STEPS_AHEAD > 0 and len(timeline.images) > 0
        self._feed = _ImageFeed(timeline) if ahead else None

    @property
    def prefetch_cpu_seconds(self) -> float:
        """CPU time the image thread spent reading and encoding."""
        return 0.0 if self._feed is None else self._feed.cpu_seconds

    def close(self) -> None:
        """Stop encoding ahead (the run ended)."""
        if self._feed is not None:
            self._feed.close()

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
            got = None if self._feed is None else self._feed.take(k)
            shown, n = got if got is not None else _image_pieces(tl, a, b)
            out += [',"images":[', ",".join(shown), "]"]
            rv.image_bytes += n
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
