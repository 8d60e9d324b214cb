"""Streaming evaluation for a model author: write ``predict(batch)``, call ``run(predict)``.

The platform's gateway asks for predictions one prediction time at a time and reveals each
stay's data up to that time only (protocol ``medmod-stream`` version 1, documented in the
platform's docs/containers.md). This module speaks the protocol, keeps every stay's revealed
history, and calls your function once per step::

    import medmod_stream

    def predict(batch):
        # batch.time: hours since ICU admission; batch.units: what to predict now
        risk = []
        for unit in batch.units:
            stay = unit.stay                 # everything revealed so far for this stay
            hr = [r[1 + stay.column("Heart Rate")] for r in stay.timeseries
                  if r[1 + stay.column("Heart Rate")] is not None]
            risk.append(0.9 if hr and max(hr) > 120 else 0.1)
        return {"prediction": risk}          # one value per unit, in batch.units order

    medmod_stream.run(predict)

The channel is the Unix socket named by ``MEDMOD_GATEWAY``, or stdin/stdout when it is unset
or ``stdio`` (then anything you print goes to stderr, the run's log). Only the standard
library is used: copy this file into your image.
"""

from __future__ import annotations

import array
import base64
import json
import os
import socket
import sys
import time

PROTOCOL = "medmod-stream"
VERSION = 1
N_FEATURES = 76


class ProtocolError(RuntimeError):
    """The gateway sent something this helper does not understand."""


class Image:
    """A chest X-ray revealed for a stay: ``token``, ``hours`` (since admission), ``png``."""

    __slots__ = ("token", "hours", "png")

    def __init__(self, token: str, hours: float, png: bytes) -> None:
        self.token, self.hours, self.png = token, hours, png


class Stay:
    """What has been revealed of one ICU stay so far.

    ``timeseries``: rows ``[hours, v1, ..., v17]`` in time order (``None`` = not measured;
    variable order as in ``hello["variables"]``, see :meth:`column`). ``discretized``: the
    complete hourly rows, flat, 76 floats per hour (``hours`` of them); :meth:`rows` gives
    them as lists. ``images``: :class:`Image` objects in time order.
    """

    def __init__(self, token: str, variables: list[str]) -> None:
        self.token = token
        self.timeseries: list[list] = []
        self.discretized = array.array("f")
        self.hours = 0
        self.images: list[Image] = []
        self._variables = variables
        self.state: dict = {}  # free for the model's own per-stay memory

    def column(self, variable: str) -> int:
        """Position of a variable among the 17 (add 1 to index a time-series row)."""
        return self._variables.index(variable)

    def rows(self, start: int = 0, stop: int | None = None) -> list[list[float]]:
        """Discretized hours ``start`` .. ``stop`` as lists of 76 floats."""
        stop = self.hours if stop is None else min(stop, self.hours)
        d = self.discretized
        return [d[i * N_FEATURES : (i + 1) * N_FEATURES].tolist() for i in range(start, stop)]


class Unit:
    """One prediction asked at this step: ``token``, its ``stay``, and ``image`` (the
    latest chest X-ray at or before the prediction time, or ``None``)."""

    __slots__ = ("token", "stay", "image")

    def __init__(self, token: str, stay: Stay, image: Image | None) -> None:
        self.token, self.stay, self.image = token, stay, image


class Batch:
    """One step: ``step`` (its number), ``time`` (hours), ``units``, ``hello``."""

    def __init__(self, step: int, time: float, units: list[Unit], hello: dict) -> None:
        self.step, self.time, self.units, self.hello = step, time, units, hello


def _decode_floats(data: str) -> array.array:
    values = array.array("f", base64.b64decode(data))
    if sys.byteorder == "big":
        values.byteswap()
    return values


class Stream:
    """The conversation with the gateway: iterate to get batches, :meth:`answer` each."""

    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("MEDMOD_GATEWAY", "stdio") if address is None else address
        if address in ("", "stdio", "-"):
            out_fd = os.dup(1)
            os.dup2(2, 1)  # print() now goes to stderr, the run's log
            sys.stdout = sys.stderr
            self._in = os.fdopen(os.dup(0), "rb")
            self._out = os.fdopen(out_fd, "wb")
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            for attempt in range(50):
                try:
                    sock.connect(address)
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
            self._in = sock.makefile("rb")
            self._out = sock.makefile("wb")
        self.hello = self._receive()
        if self.hello.get("type") != "hello" or self.hello.get("protocol") != PROTOCOL:
            raise ProtocolError(f"expected a {PROTOCOL} hello, got {str(self.hello)[:200]}")
        if self.hello.get("version") != VERSION:
            raise ProtocolError(f"this helper speaks version {VERSION}, not {self.hello.get('version')}")  # fmt: skip
        self.task: str = self.hello["task"]
        self.stays: dict[str, Stay] = {}
        self.images: dict[str, Image] = {}
        self._pending: list[str] | None = None

    def _receive(self) -> dict:
        line = self._in.readline()
        if not line:
            raise ProtocolError("the gateway closed the channel")
        return json.loads(line)

    def _send(self, message: dict) -> None:
        self._out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        self._out.flush()

    def ready(self) -> None:
        self._send({"type": "ready"})

    def _stay(self, token: str) -> Stay:
        stay = self.stays.get(token)
        if stay is None:
            stay = self.stays[token] = Stay(token, self.hello["variables"])
        return stay

    def _absorb(self, msg: dict) -> Batch:
        for row in msg.get("timeseries", ()):
            self._stay(row[0]).timeseries.append(row[1:])
        disc = msg.get("discretized")
        if disc:
            values = _decode_floats(disc["data"])
            at = 0
            for token, first, hours in zip(
                disc["stays"], disc["first_hour"], disc["hours"], strict=True
            ):
                stay = self._stay(token)
                if first != stay.hours:
                    raise ProtocolError(f"stay {token}: hour {first} follows hour {stay.hours}")
                n = hours * N_FEATURES
                stay.discretized.extend(values[at : at + n])
                stay.hours += hours
                at += n
        for item in msg.get("images", ()):
            image = Image(item["image"], item["hours"], base64.b64decode(item["png"]))
            self.images[image.token] = image
            self._stay(item["stay"]).images.append(image)
        units = [
            Unit(u["unit"], self._stay(u["stay"]), self.images.get(u["image"] or ""))
            for u in msg["units"]
        ]
        return Batch(msg["step"], msg["time"], units, self.hello)

    def __iter__(self):
        while True:
            msg = self._receive()
            if msg.get("type") == "end":
                return
            if msg.get("type") != "step":
                raise ProtocolError(f"unexpected message {str(msg)[:200]}")
            batch = self._absorb(msg)
            self._pending = [u.token for u in batch.units]
            yield batch

    def answer(self, batch: Batch, predictions) -> None:
        """Send the predictions of a batch: ``{column: values}`` with one value per unit in
        ``batch.units`` order (or a plain sequence for a task's single ``prediction``)."""
        if not isinstance(predictions, dict):
            predictions = {"prediction": predictions}
        values = {}
        for column, vals in predictions.items():
            vals = vals.tolist() if hasattr(vals, "tolist") else list(vals)
            values[column] = [v if v is None else float(v) for v in vals]
        self._send({"type": "answer", "step": batch.step,
                    "units": [u.token for u in batch.units], "values": values})  # fmt: skip


def run(predict, *, setup=None, address: str | None = None) -> int:
    """Serve ``predict(batch) -> {column: values}`` until the gateway's end message.

    ``setup(hello)``, if given, runs before the model says it is ready (load weights there:
    the first step's time limit does not include it). Returns 0 for ``sys.exit``.
    """
    stream = Stream(address)
    if setup is not None:
        setup(stream.hello)
    stream.ready()
    for batch in stream:
        stream.answer(batch, predict(batch))
    return 0
