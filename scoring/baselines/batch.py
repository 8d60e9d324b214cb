"""The batch every baseline model consumes.

A batch holds ``B`` EHR sequences (padded at the end), the ``K`` distinct chest X-rays they
use, and ``R`` read-outs: one per unit to predict. A read-out names its sequence, the row
after which it predicts (``pos``: the unit's last usable discretized row) and its image
(an index into ``images``, or -1 when the unit has no image or it is withheld).

Non-hourly tasks have one read-out per sequence (at its end). Hourly tasks have one
sequence per stay and one read-out per hourly row, so one causal pass over a stay serves all
of its prediction times. ``step_img`` gives the image available at each row of a sequence
(-1 before the first one), used by models that mix the image into the EHR recurrence.

A batch may also carry its encoders' outputs, computed elsewhere: ``ehr_ro``, the EHR
encoder's state per read-out (for MMTM, that state and the squeeze vector at the read-out's
row, concatenated), and ``maps``, the CNN's feature maps of ``images``. The streaming
predictor (:mod:`scoring.baselines.stream`) keeps both per stay and per image instead of
running the encoders again over a stay's whole history at every prediction time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    x: torch.Tensor  # (B, T, 76) float32, zero-padded at the end
    images: torch.Tensor  # (K, 1, S, S) float32, normalised
    ro_seq: torch.Tensor  # (R,) int64
    ro_pos: torch.Tensor  # (R,) int64
    ro_img: torch.Tensor  # (R,) int64, -1 = no image
    step_img: torch.Tensor  # (B, T) int64, -1 = no image yet
    y: torch.Tensor | None = None  # (R,) or (R, L) float32; (R,) int64 buckets for LOS
    units: torch.Tensor | None = None  # (R,) int64 row of each read-out in its unit list
    ehr_ro: torch.Tensor | None = None  # (R, H) encoder state per read-out, when given
    maps: torch.Tensor | None = None  # (K, C, h, w) feature maps of ``images``, when given

    @property
    def has_image(self) -> torch.Tensor:
        """Per read-out mask: True when the unit's image is part of the input."""
        return self.ro_img >= 0

    @property
    def n_readouts(self) -> int:
        return int(self.ro_seq.shape[0])
