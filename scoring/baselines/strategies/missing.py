"""Parts shared by the missing-modality strategies (DrFuse, ShaSpec, M3Care, SMIL, UMSE).

:class:`EncodedPair` holds the two unimodal encoders and reads a batch the way the
streaming gateway can serve it: the EHR encoder's state per read-out and the CNN's pooled
feature maps, looked up per read-out, with a mask of the read-outs that have an image. It
has no parameters of its own, so a strategy's checkpoint holds only what the strategy uses.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from scoring.baselines.batch import Batch
from scoring.baselines.encoders import EHREncoder, build_cxr_encoder, pool
from scoring.baselines.models import Baseline, _lookup, task_loss


class Encoded(NamedTuple):
    """Encoder outputs per read-out: EHR state ``(R, h)`` after the read-out dropout, the
    image's pooled features ``(R, c)`` (zeros where there is none) and the image mask
    ``(R,)``."""

    ehr: torch.Tensor
    img: torch.Tensor
    has: torch.Tensor


class EncodedPair(Baseline):
    """The task's EHR encoder ``self.ehr`` and CNN ``self.cxr``, and the EHR read-out dropout.

    A strategy's training objective is the sum of :meth:`losses`, its named terms (the task
    loss and the auxiliary losses, each already multiplied by its weight).
    """

    def __init__(
        self, *, kind: str, out_dim: int, ehr_hidden: int, dropout: float, cxr_encoder: str
    ) -> None:
        super().__init__(kind=kind, out_dim=out_dim)
        self.ehr = EHREncoder(hidden=ehr_hidden)
        self.cxr = build_cxr_encoder(cxr_encoder)
        self.drop = nn.Dropout(dropout)

    @property
    def hidden(self) -> int:
        return self.ehr.hidden

    @property
    def channels(self) -> int:
        return self.cxr.out_channels

    def encode(self, batch: Batch) -> Encoded:
        ehr = self.drop(self._ehr(self.ehr, batch))
        pooled = pool(self._maps(self.cxr, batch))
        img = _lookup(pooled, batch.ro_img, pooled.new_zeros(pooled.shape[1]))
        return Encoded(ehr, img, batch.has_image)

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The weighted terms of the training objective; here the task loss only."""
        assert batch.y is not None
        return {"task": task_loss(self.kind, self(batch), batch.y)}

    def training_loss(self, batch: Batch) -> torch.Tensor:
        terms = list(self.losses(batch).values())
        return torch.stack(terms).sum()


def mlp(d_in: int, d_out: int) -> nn.Sequential:
    """Two linear layers with a ReLU between them (hidden size ``d_out``)."""
    return nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(inplace=True), nn.Linear(d_out, d_out))


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (any shape, first axis the read-outs) over the read-outs in
    ``mask``; zero (with a gradient path) when the mask is empty."""
    if not bool(mask.any()):
        return values.sum() * 0.0
    return values[mask].mean()


def jsd(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence per row between the softmax distributions of two sets of
    logits ``(N, d)``: ``(N,)``, between 0 and log 2."""
    log_p = torch.log_softmax(p_logits, dim=-1)
    log_q = torch.log_softmax(q_logits, dim=-1)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - math.log(2.0)
    kl_pm = (log_p.exp() * (log_p - log_m)).sum(dim=-1)
    kl_qm = (log_q.exp() * (log_q - log_m)).sum(dim=-1)
    return 0.5 * (kl_pm + kl_qm)


def attention_heads(dim: int, wanted: int = 4) -> int:
    """The largest number of attention heads up to ``wanted`` that divides ``dim``."""
    return next(n for n in range(wanted, 0, -1) if dim % n == 0)


def per_label_loss(kind: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The task loss per read-out and output ``(R, out_dim)``: binary cross-entropy per label,
    or (length of stay) each read-out's cross-entropy repeated over the ten buckets."""
    if kind == "los":
        ce = nn.functional.cross_entropy(logits, y.long(), reduction="none")
        return ce.unsqueeze(1).expand_as(logits)
    return nn.functional.binary_cross_entropy_with_logits(
        logits, y.float().view_as(logits), reduction="none"
    )
