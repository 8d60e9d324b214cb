"""DrFuse: disentangled shared and specific representations with disease-wise attention.

After Yao, Chen, Liu, Zhao, Wu, Xu and Yang, "DrFuse: Learning Disentangled Representation
for Clinical Multi-Modal Fusion with Missing Modality and Modal Inconsistency", AAAI 2024.

What it keeps
    Each modality is split into a shared and a specific (distinct) representation by two
    networks per modality: ``s_e``, ``d_e`` from the EHR state, ``s_v``, ``d_v`` from the
    pooled image features. The shared representation of a unit is the mean of ``s_e`` and
    ``s_v``; **without an image it is ``s_e`` alone** and the image's specific
    representation is masked out of the attention: the missing modality is handled by the
    shared representation, as in the paper. Disease-wise attention: one learned query per
    output (label, or bucket for length of stay) attends over the tokens ``[d_e, s, d_v]``
    and a per-output linear read-out of the attended vector gives that output's logit. As in
    the paper's logit averaging, the prediction is the mean of that logit and those of a
    head on each available representation (``d_e``, ``s``, ``d_v``).

    Training objectives (:meth:`DrFuse.losses`, weights as in CareBench's
    configuration): the task loss of the prediction; the task loss of each representation's
    head (``LAMBDA_PRED`` = 1 each, ``d_v``'s on units with an image); the disentanglement
    losses with Jensen-Shannon divergences between the softmax of the representations,
    pulling ``s_e`` and ``s_v`` together (``LAMBDA_SHARED`` = 1) and pushing each specific
    representation away from its modality's shared one (``LAMBDA_EHR`` = ``LAMBDA_CXR`` = 1,
    as ``log 2 - JSD``); and the attention ranking loss for modal inconsistency
    (``LAMBDA_ATTN`` = 1): per unit with an image and per output, the attention on the
    specific representation of the modality whose own head has the lower loss must exceed
    the other's by ``ATTN_MARGIN`` = 0.1.

What it simplifies, and why
    The paper's EHR transformer and the image's separate shared and specific backbones are
    replaced by the platform's one EHR LSTM and one CNN (the task's trained unimodal
    encoders, fine-tuned), with two-layer networks on their outputs making the shared and
    specific parts: the streaming gateway keeps one recurrent state per stay and one set of
    feature maps per image, and the 2-core machine trains at most about one and a half joint
    fusion models' worth of work per task. Sizes: shared and specific representations of the
    EHR state's size (``ehr_hidden``); dropout on the EHR state as MedFuse's.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import nn

from scoring.baselines.batch import Batch
from scoring.baselines.models import task_loss
from scoring.baselines.strategies.missing import (
    EncodedPair,
    jsd,
    masked_mean,
    mlp,
    per_label_loss,
)

LAMBDA_PRED = 1.0
LAMBDA_SHARED = 1.0
LAMBDA_EHR = 1.0
LAMBDA_CXR = 1.0
LAMBDA_ATTN = 1.0
ATTN_MARGIN = 0.1


class _Parts(NamedTuple):
    logits: torch.Tensor  # (R, out) the prediction
    head_ehr: torch.Tensor  # (R, out) logits of the EHR-specific head
    head_shared: torch.Tensor
    head_cxr: torch.Tensor  # meaningful where has
    shared_ehr: torch.Tensor  # (R, h)
    shared_cxr: torch.Tensor
    spec_ehr: torch.Tensor
    spec_cxr: torch.Tensor
    weights: torch.Tensor  # (R, out, 3) attention over [d_e, s, d_v]
    has: torch.Tensor


class DrFuse(EncodedPair):
    """Shared/specific representations, disease-wise attention, shared-only without image."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        h, c, out = self.hidden, self.channels, self.out_dim
        self.ehr_shared = mlp(h, h)
        self.ehr_specific = mlp(h, h)
        self.cxr_shared = mlp(c, h)
        self.cxr_specific = mlp(c, h)
        self.queries = nn.Parameter(torch.randn(out, h) / math.sqrt(h))
        self.keys = nn.Linear(h, h)
        self.readout_weight = nn.Parameter(torch.randn(out, h) / math.sqrt(h))
        self.readout_bias = nn.Parameter(torch.zeros(out))
        self.head_ehr = nn.Linear(h, out)
        self.head_shared = nn.Linear(h, out)
        self.head_cxr = nn.Linear(h, out)

    def parts(self, batch: Batch) -> _Parts:
        ehr, img, has = self.encode(batch)
        s_e, d_e = self.ehr_shared(ehr), self.ehr_specific(ehr)
        s_v, d_v = self.cxr_shared(img), self.cxr_specific(img)
        hm = has.unsqueeze(1)
        shared = torch.where(hm, 0.5 * (s_e + s_v), s_e)
        tokens = torch.stack([d_e, shared, d_v], dim=1)  # (R, 3, h)
        scores = torch.einsum("rth,oh->rot", self.keys(tokens), self.queries)
        scores = scores / math.sqrt(self.hidden)
        # Without an image its specific token takes no part in the attention.
        absent = torch.stack([~has, torch.zeros_like(has), torch.zeros_like(has)], dim=1)
        scores = scores.masked_fill(absent.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (R, out, 3)
        attended = torch.einsum("rot,rth->roh", weights, tokens)
        attn_logits = (attended * self.readout_weight).sum(dim=-1) + self.readout_bias
        head_e, head_s, head_v = self.head_ehr(d_e), self.head_shared(shared), self.head_cxr(d_v)
        with_image = (attn_logits + head_e + head_s + head_v) / 4.0
        without = (attn_logits + head_e + head_s) / 3.0
        logits = torch.where(hm, with_image, without)
        return _Parts(logits, head_e, head_s, head_v, s_e, s_v, d_e, d_v, weights, has)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.parts(batch).logits

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Task loss, the representations' heads, disentanglement and attention ranking."""
        assert batch.y is not None
        p = self.parts(batch)
        y, has = batch.y, p.has
        pred = task_loss(self.kind, p.head_ehr, y) + task_loss(self.kind, p.head_shared, y)
        per_cxr = per_label_loss(self.kind, p.head_cxr, y)
        pred = pred + masked_mean(per_cxr.mean(dim=1), has)
        log2 = math.log(2.0)
        # The modality whose own head predicts an output better gets more attention on it.
        with torch.no_grad():
            per_ehr = per_label_loss(self.kind, p.head_ehr, y)
            sign = torch.sign(per_cxr.detach() - per_ehr)  # +1: the EHR head is better
        gap = p.weights[:, :, 0] - p.weights[:, :, 2]
        rank = torch.relu(ATTN_MARGIN - sign * gap) * (sign != 0)
        return {
            "task": task_loss(self.kind, p.logits, y),
            "heads": LAMBDA_PRED * pred,
            "shared": LAMBDA_SHARED * masked_mean(jsd(p.shared_ehr, p.shared_cxr), has),
            "apart_ehr": LAMBDA_EHR * (log2 - jsd(p.spec_ehr, p.shared_ehr)).mean(),
            "apart_cxr": LAMBDA_CXR * masked_mean(log2 - jsd(p.spec_cxr, p.shared_cxr), has),
            "attention": LAMBDA_ATTN * masked_mean(rank.mean(dim=1), has),
        }
