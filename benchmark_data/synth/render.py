"""Drawing synthetic AP chest X-rays (8-bit grayscale PNG) from finding parameters.

A frontal chest: soft tissue, two lung fields with ribs, the heart and mediastinum hiding
the lung behind them, spine and clavicles; findings drawn on top (basal fluid with a
meniscus, perihilar haze, lobar consolidation, plate atelectasis, a nodule, an apical
pneumothorax with its pleural line, a rib callus, pleural thickening) and devices
(endotracheal and nasogastric tubes, a central line, a pacemaker, sternal wires, ECG
leads). Position, size, rotation, exposure and noise vary per image.

Images are drawn in batches with numpy, using cheap polynomial bumps and linear ramps
instead of exponentials; each finding is drawn only on the images that show it. The same
parameters and random stream give the same pixels, and the same pixels the same PNG bytes.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

BATCH = 64
F = np.float32
MIN_EXTENT = 0.1  # below this a finding is not drawn
Arr = Any  # numpy arrays broadcast as (B, size, size) or (B, 1, 1)

# Lung fields (centre x, centre y, half width, half height); the right lung is on the left.
LUNGS = ((-0.38, -0.06, 0.27, 0.62), (0.38, -0.04, 0.26, 0.60))
# Centres of the five lobes where a consolidation sits.
LOBE_X = np.array([-0.38, 0.38, -0.36, 0.36, -0.30], dtype=F)
LOBE_Y = np.array([0.30, 0.30, -0.35, -0.35, 0.05], dtype=F)


def _ramp(x: Arr) -> Arr:
    """Soft step from 0 to 1 around 0 (a linear stand-in for the logistic)."""
    return np.clip(0.5 + 0.25 * x, 0, 1)


def _bump(u: Arr) -> Arr:
    """Gaussian-like bump of a squared, scaled distance ``u`` (1 at 0, 0 from ``u = 4``)."""
    return np.square(np.square(np.clip(1 - 0.25 * u, 0, None)))


def _ellipse(x: Arr, y: Arr, cx: Arr, cy: Arr, ax: Arr, ay: Arr, soft: float,
             taper: float = 0.0) -> Arr:  # fmt: skip
    """Soft indicator of an ellipse, wider at the bottom by ``taper``."""
    ax_y = ax * (1 + taper * np.clip((y - cy) / ay, -1, 1)) if taper else ax
    return _ramp((1 - ((x - cx) / ax_y) ** 2 - ((y - cy) / ay) ** 2) / soft)


def _line(x: Arr, y: Arr, x_of_y: Arr, y0: Arr, y1: Arr, w: float) -> Arr:
    """A thin vertical-ish line ``x = x_of_y`` between ``y0`` and ``y1``."""
    return _bump(((x - x_of_y) / w) ** 2) * _ramp((y - y0) / 0.01) * _ramp((y1 - y) / 0.01)


def _upsample_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Bilinear interpolation weights (n_out x n_in) for smooth noise fields."""
    pos = np.linspace(0, n_in - 1, n_out)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m.astype(F)


def _smooth_noise(rng: np.random.Generator, b: int, size: int, cells: int) -> np.ndarray:
    m = _upsample_matrix(size, cells)
    g = rng.standard_normal((b, cells, cells), dtype=F)
    return np.asarray(np.matmul(np.matmul(m, g), m.T))


class _Chest:
    """One batch being drawn: coordinates, anatomy and the per-image parameters.

    Each finding method takes ``(x, y, i, c)``: the coordinates of the images that show the
    finding, their batch index (for other per-image arrays) and their parameters.
    """

    def __init__(self, p: pd.DataFrame, size: int, rng: np.random.Generator) -> None:
        b = self.b = len(p)
        self.p = p
        self.rng = rng
        self.cols = {c: p[c].to_numpy(dtype=F).reshape(b, 1, 1) for c in p.columns}
        self.w_line = max(0.012, 0.9 * 2.0 / size)
        grid = np.linspace(-1, 1, size, dtype=F)
        gx, gy = np.meshgrid(grid, grid)
        rot = self.cols["rotation"]
        scale = 1 + 0.04 * self.normal()
        dx, dy = 0.03 * self.normal(), 0.03 * self.normal()
        x = self.x = (np.cos(rot) * gx + np.sin(rot) * gy) / scale - dx
        y = self.y = (-np.sin(rot) * gx + np.cos(rot) * gy) / scale - dy
        self.img = 0.08 + 0.42 * _ellipse(x, y, 0, 0.15, 0.92 + 0.06 * self.normal(), 1.15, 0.05)
        # Lungs (taller with COPD), hidden behind the heart and mediastinum.
        tall = 1 + self.cols["hyperinflation"]
        hw, mw = self.cols["heart_width"], self.cols["mediastinum_width"]
        heart = _ellipse(x, y, 0.06 + 0.08 * hw, 0.33, 0.27 * hw, 0.21, 0.06)
        med = _ramp((0.11 * mw - np.abs(x - 0.02)) / 0.02) * _ramp((0.25 - y) / 0.05)
        clear = 1 - np.maximum(heart, med)
        self.lungs = [
            _ellipse(x, y, cx, cy, ax, ay * tall, 0.08, taper=0.25) * clear
            for cx, cy, ax, ay in LUNGS
        ]
        self.lung_any = np.maximum(self.lungs[0], self.lungs[1])
        self.img += 0.04 * heart - 0.34 * self.lung_any
        self.rib_seen = self.lung_any.copy()
        self.img += 0.05 * _ramp((0.05 - np.abs(x)) / 0.01)  # spine
        for sgn in (-1, 1):  # clavicles
            t = np.clip((sgn * x - 0.08) / 0.67, 0, 1)
            inside = _ramp((sgn * x - 0.08) / 0.02) * _ramp((0.75 - sgn * x) / 0.02)
            self.img += 0.12 * _bump(((y + 0.62 + 0.16 * t) / 0.025) ** 2) * inside
        self.texture = _smooth_noise(rng, b, size, 8)
        self.patches = _smooth_noise(rng, b, size, 16)
        lobe = p["consolidation_lobe"].to_numpy()
        self.lobe_x = LOBE_X[lobe].reshape(b, 1, 1)
        self.lobe_y = LOBE_Y[lobe].reshape(b, 1, 1)
        self.tube_x = 0.01 + 0.02 * self.normal()
        self.tube_tip = -0.42 + 0.05 * self.normal()
        self.ecg_xy = self.rng.uniform(-0.8, 0.8, (3, 2, b, 1, 1)).astype(F)

    def normal(self) -> np.ndarray:
        return self.rng.standard_normal((self.b, 1, 1), dtype=F)

    def draw(self, name: str, fn: Any) -> None:
        """Add ``fn(x, y, i, c)`` to the images where parameter ``name`` exceeds
        ``MIN_EXTENT``."""
        sel = self.p[name].to_numpy() > MIN_EXTENT
        if sel.all():
            self.img += fn(self.x, self.y, slice(None), self.cols)
        elif sel.any():
            i = np.flatnonzero(sel)
            self.img[i] += fn(self.x[i], self.y[i], i, {k: v[i] for k, v in self.cols.items()})

    # Findings -----------------------------------------------------------------------------
    def effusion(self, side: int) -> Any:
        """Basal fluid rising laterally (meniscus)."""
        cx, cy, ax, ay = LUNGS[side]
        name = ("effusion_right", "effusion_left")[side]

        def fn(x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
            a = c[name]
            h = ay * (1 + c["hyperinflation"])
            line = cy + h - h * np.minimum(0.1 + 0.5 * a, 0.9)
            line = line - 0.3 * np.minimum(a, 1.5) * ((x - cx) / ax) ** 2
            return 0.32 * np.minimum(1, 2 * a) * _ramp((y - line) / 0.03) * self.lungs[side][i]

        return fn

    def edema(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        """Bilateral perihilar haze."""
        u = (np.abs(x) - 0.25) ** 2 / 0.04 + (y - 0.05) ** 2 / 0.075
        haze = _bump(u) * self.lung_any[i] * (0.8 + 0.15 * self.texture[i])
        return 0.25 * np.minimum(c["edema"], 1.5) * haze

    def _blob(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        r = 0.08 + 0.07 * np.minimum(c["consolidation"], 2)
        d2 = (x - self.lobe_x[i]) ** 2 + (y - self.lobe_y[i]) ** 2
        return _bump(d2 / r**2) * self.lung_any[i]

    def consolidation(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        """A dense lobar blob."""
        dense = 0.75 + 0.25 * np.tanh(self.patches[i])
        return 0.32 * np.minimum(1, 0.2 + c["consolidation"]) * self._blob(x, y, i, c) * dense

    def pneumonia(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        """Patchy airspace opacity over the consolidated lobe."""
        patchy = _ramp(3 * self.patches[i])
        return 0.15 * np.minimum(1, c["pneumonia"]) * self._blob(x, y, i, c) * patchy

    def atelectasis(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        """Plate-like bands above the diaphragm."""
        out = 0
        for side, (cx, cy, _ax, ay) in enumerate(LUNGS):
            band = _bump(((y - (cy + 0.55 * ay)) / 0.035) ** 2 + ((x - cx) / 0.15) ** 2)
            out = out + band * self.lungs[side][i] * (0.6 if side else 1.0)
        return 0.25 * np.minimum(1, c["atelectasis"]) * out

    def lesion(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        """A small round nodule."""
        r = 0.045 + 0.01 * c["lesion"]
        u = ((x - c["lesion_x"]) ** 2 + (y - c["lesion_y"]) ** 2) / r**2
        return 0.32 * np.minimum(1, 1.5 * c["lesion"]) * _bump(u) * self.lung_any[i]

    def pneumothorax(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        """Apical-lateral region without lung markings, with a pleural line."""
        out = 0
        for side, (cx, cy, ax, _ay) in enumerate(LUNGS):
            on = (c["right_side"] > 0.5) == (side == 0)
            lat = (x - cx) * (1 if side else -1) / ax
            edge = 0.8 - 0.5 * np.minimum(c["pneumothorax"], 1)
            upper = _ramp((cy + 0.1 - y) / 0.05) * self.lungs[side][i] * on
            upper = upper * np.minimum(1, 2 * c["pneumothorax"])
            region = _ramp((lat - edge) / 0.03) * upper
            self.rib_seen[i] -= region
            out = out - 0.10 * region + 0.15 * _bump(((lat - edge) / 0.04) ** 2) * upper
        return out

    def fracture(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        """A rib callus, lateral."""
        fx = np.where(c["right_side"] > 0.5, -0.6, 0.6)
        u = (x - fx) ** 2 / 0.0015 + (y + 0.1) ** 2 / 0.004
        return 0.25 * np.minimum(1, c["fracture"]) * _bump(u)

    def pleural_other(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        """Pleural thickening along the upper lateral chest wall."""
        out = 0
        for side, (cx, cy, ax, _ay) in enumerate(LUNGS):
            lat = (x - cx) * (1 if side else -1) / ax
            stripe = _bump(((lat - 0.9) / 0.06) ** 2) * _ramp((cy - y) / 0.05)
            out = out + stripe * self.lungs[side][i]
        return 0.2 * np.minimum(1, c["pleural_other"]) * out

    # Devices ------------------------------------------------------------------------------
    def ett(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        return 0.45 * _line(x, y, self.tube_x[i], -1.2, self.tube_tip[i], self.w_line)

    def ng(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        path = self.tube_x[i] - 0.02 + 0.3 * np.clip(y - 0.3, 0, 1) ** 2
        return 0.35 * _line(x, y, path, -1.2, 0.85, self.w_line)

    def cvc(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        path = -0.08 - 0.47 * np.clip((-0.3 - y) / 0.48, 0, 1) ** 1.5
        return 0.40 * _line(x, y, path, -0.78, -0.3, self.w_line)

    def pacer(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        box = _ramp((0.07 - np.abs(x - 0.55)) / 0.01) * _ramp((0.05 - np.abs(y + 0.62)) / 0.01)
        lead = 0.55 - 0.45 * np.clip((y + 0.62) / 0.85, 0, 1)
        return 0.6 * box + 0.35 * _line(x, y, lead, -0.62, 0.23, self.w_line)

    def wires(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        out = 0
        for yk in (-0.3, -0.15, 0.0, 0.15):
            out = out + _bump(((x - 0.02) ** 2 + (y - yk) ** 2) / (1.5 * self.w_line) ** 2)
        return 0.5 * out

    def ecg(self, x: Arr, y: Arr, i: Arr, c: dict[str, Arr]) -> Arr:
        out = 0
        for ex, ey in self.ecg_xy[:, :, i]:
            r = np.sqrt((x - ex) ** 2 + (y - (0.9 * ey - 0.15)) ** 2)
            out = out + _bump(((r - 0.035) / 0.01) ** 2)
        return 0.25 * out

    def finish(self) -> np.ndarray:
        """Ribs where lung markings show, exposure, mottle and quantum noise; uint8."""
        ribs = np.maximum(np.sin(2 * np.pi * (5.2 * self.y - 1.6 * self.x**2)), 0) ** 3
        img = self.img + 0.06 * ribs * np.clip(self.rib_seen, 0, 1)
        gain, bias = 1 + 0.06 * self.normal(), 0.03 * self.normal()
        noise = self.cols["noise"]
        img = gain * img + bias + 0.015 * noise * self.texture
        img += 0.012 * noise * self.rng.standard_normal(img.shape, dtype=F)
        return np.asarray(np.clip(np.round(255 * img), 0, 255).astype(np.uint8))


def render_batch(p: pd.DataFrame, size: int, rng: np.random.Generator) -> np.ndarray:
    """Pixels (B, size, size) uint8 of the images described by the rows of ``p``."""
    chest = _Chest(p, size, rng)
    chest.draw("effusion_right", chest.effusion(0))
    chest.draw("effusion_left", chest.effusion(1))
    for name in ("edema", "consolidation", "pneumonia", "atelectasis", "lesion",
                 "pneumothorax", "fracture", "pleural_other",
                 "ett", "ng", "cvc", "pacer", "wires", "ecg"):  # fmt: skip
        chest.draw(name, getattr(chest, name))
    return chest.finish()


def png_bytes(pixels: np.ndarray) -> bytes:
    """8-bit grayscale PNG; deterministic for the same pixels."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
