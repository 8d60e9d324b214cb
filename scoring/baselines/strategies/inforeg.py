"""InfoReg: the faster-learning modality's updates held back while information is being
acquired.

Follows Huang, Wei, Yang and Hu, "Adaptive Unimodal Regulation for Balanced Multimodal
Information Acquisition", CVPR 2025. Early in training (the information-acquisition stage,
recognised by the trace of the Fisher information still rising) the modality that learns
faster, the prime modality, acquires information at the expense of the other, which then
never catches up. InfoReg detects that stage and, while it lasts, regulates the prime
modality's updates: its parameters are held near their earlier ("global") state in
proportion to how far ahead it is, giving the other modality time to acquire its
information. Afterwards training goes on unregulated.

Kept: a fusion model with unimodal heads whose losses are added to the fused loss (as
CareBench), the per-step comparison of the unimodal heads' scores to find the prime
modality and its lead, the stage test on the Fisher information's trace (estimated, as
usual, by the squared gradients), and the regulation of the prime modality's encoder in
``adjust_gradients``: ``grad += beta * (theta - theta_global)`` with ``theta_global`` the
encoder's parameters at the start of the epoch and
``beta = BETA_SCALE * (s_prime - s_other) / (s_prime + s_other)``, capped at ``BETA_MAX``
(a proximal pull, so under Adam the prime modality's parameters drift away from where the
epoch began more slowly).

Simplified, and why: one shared EHR encoder (its LSTM state per read-out, which the
streaming gateway hands the model) and one CNN; concatenation fusion (the joint head on
[EHR state, projected image features]). The stage test: with ``trace_t`` the sum of squared
encoder gradients at step ``t``, the stage lasts while the mean over the last ``WINDOW``
steps exceeds that over the ``WINDOW`` steps before by more than ``K_THRESHOLD`` of itself
(and for the first ``2 * WINDOW`` steps, before both windows exist). The scores compared
are the mean probabilities the unimodal heads give the true labels, on the step's units
that have an image.

No image (per read-out ``batch.has_image``; InfoReg assumes complete modalities): the joint
head is given the learned "no image" vector in place of the projected image features; the
image head's loss is taken on the units with an image only. Prediction is the joint head.

Hyperparameters: unimodal loss weights 1 and 1 (joint + EHR + image, as CareBench),
``WINDOW`` = 10 steps, ``K_THRESHOLD`` = 0.05, ``BETA_SCALE`` = 1.0, ``BETA_MAX`` = 0.9;
dropout on the EHR state: the run's ``dropout``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from scoring.baselines.batch import Batch
from scoring.baselines.encoders import pool
from scoring.baselines.models import _TwoEncoders, task_loss
from scoring.baselines.strategies.blocks import aligned_score

WINDOW = 10
K_THRESHOLD = 0.05
BETA_SCALE = 1.0
BETA_MAX = 0.9
PREFIXES = {"ehr": "ehr.", "image": "cxr."}


class InfoReg(_TwoEncoders):
    """Concatenation fusion with unimodal heads for training; the prime modality's encoder
    gradient regulated during the information-acquisition stage."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        h = self.ehr.hidden
        self.head = nn.Linear(2 * h, self.out_dim)
        self.head_ehr = nn.Linear(h, self.out_dim)
        self.head_img = nn.Linear(h, self.out_dim)
        self._traces: list[float] = []
        self._anchor: dict[str, torch.Tensor] = {}
        self._epoch = 0
        self._scores: dict[str, float] | None = None
        self.last_beta: dict[str, float] = {"ehr": 0.0, "image": 0.0}

    def _parts(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        ehr = self.drop(self._ehr(self.ehr, batch))
        img = self._image_vectors(pool(self._maps(self.cxr, batch)), batch)
        return ehr, img

    def forward(self, batch: Batch) -> torch.Tensor:
        ehr, img = self._parts(batch)
        return self.head(torch.cat([ehr, img], dim=1))

    def training_loss(self, batch: Batch) -> torch.Tensor:
        assert batch.y is not None
        ehr, img = self._parts(batch)
        y, has = batch.y, batch.has_image
        loss = task_loss(self.kind, self.head(torch.cat([ehr, img], dim=1)), y)
        by_ehr = self.head_ehr(ehr)
        loss = loss + task_loss(self.kind, by_ehr, y)
        self._scores = None
        if bool(has.any()):
            by_img = self.head_img(img[has])
            loss = loss + task_loss(self.kind, by_img, y[has])
            self._scores = {
                "ehr": aligned_score(self.kind, by_ehr[has], y[has]),
                "image": aligned_score(self.kind, by_img, y[has]),
            }
        return loss

    def acquiring(self) -> bool:
        """Whether training is in the information-acquisition stage (see the module)."""
        t = self._traces
        if len(t) < 2 * WINDOW:
            return True
        recent = sum(t[-WINDOW:]) / WINDOW
        before = sum(t[-2 * WINDOW : -WINDOW]) / WINDOW
        return recent > 0 and (recent - before) / recent > K_THRESHOLD

    def regulation(self) -> dict[str, float]:
        """``beta`` per modality for this step: the prime modality's, 0 for the other."""
        beta = {"ehr": 0.0, "image": 0.0}
        s = self._scores
        if s is None or not self.acquiring() or s["ehr"] == s["image"]:
            return beta
        prime, other = ("ehr", "image") if s["ehr"] > s["image"] else ("image", "ehr")
        gap = (s[prime] - s[other]) / (s[prime] + s[other])
        beta[prime] = min(BETA_SCALE * gap, BETA_MAX)
        return beta

    def adjust_gradients(self, epoch: int) -> None:
        """Record the Fisher trace; pull the prime modality's encoder towards where the
        epoch began, in proportion to its lead, while information is being acquired."""
        named = [(n, p) for n, p in self.named_parameters() if n.startswith(("ehr.", "cxr."))]
        if epoch != self._epoch:
            self._epoch = epoch
            self._anchor = {n: p.detach().clone() for n, p in named}
        beta = self.regulation()
        self.last_beta = beta
        trace = sum(float(p.grad.pow(2).sum()) for _, p in named if p.grad is not None)
        self._traces = [*self._traces[-(2 * WINDOW - 1) :], trace]
        for modality, b in beta.items():
            if b <= 0:
                continue
            for n, p in named:
                if n.startswith(PREFIXES[modality]) and p.grad is not None:
                    p.grad.add_(p.detach() - self._anchor[n], alpha=b)
