"""UMSE: a unified multimodal set embedding with modality-aware attention and a skip bottleneck.

After Lee, Jeong, Shin, Kim, Kim and Lee, "Learning Missing Modal Electronic Health Records
with Unified Multi-modal Data Embedding and Modality-Aware Attention", ML4H (PMLR) 2023.

What it keeps
    Every input is a token of one set, in one embedding space, tagged with a learned
    embedding of its modality: the EHR token and one token per position of the image's last
    feature maps (its channels and Fourier position features, projected). Modality-aware
    attention with bottleneck tokens (``N_BOTTLENECK`` = 2 learned tokens): each modality's
    tokens attend, with the bottleneck tokens, only among themselves (one pre-norm attention
    and feed-forward layer per modality, ``heads`` = 4 when the width allows), and the
    modalities exchange information only through the bottleneck, whose new value is the
    mean of its copies updated by each modality. Skip bottleneck: **a modality that is
    missing is skipped**, so without an image the bottleneck is the EHR's update alone and
    no image token or stand-in takes part. The EHR token and the mean bottleneck token feed
    a linear head. Modality dropout in training: each read-out with an image loses it with
    probability ``MODALITY_DROPOUT`` = 0.3 (seeded from torch's generator, which training
    seeds), so the model learns both paths on the same units.

What it simplifies, and why
    The paper embeds each EHR measurement as its own token (value, variable and time
    embeddings). The streaming gateway keeps one recurrent state per stay, so here the EHR is
    one token, the state of the platform's EHR LSTM at the prediction time, and the image
    tokens come from the one CNN (both the task's trained unimodal encoders, fine-tuned);
    one fusion layer keeps the cost on the 2-core machine at most about one and a half joint
    fusion models' worth of work per task. Sizes: tokens of the EHR state's size
    (``ehr_hidden``); no auxiliary loss (the paper's optional triplet loss is left out).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from scoring.baselines.batch import Batch
from scoring.baselines.models import task_loss
from scoring.baselines.strategies.blocks import CrossAttention, FeedForward, MapTokens
from scoring.baselines.strategies.missing import EncodedPair, attention_heads

N_BOTTLENECK = 2
MODALITY_DROPOUT = 0.3


class _Stream(nn.Module):
    """One modality's pre-norm attention and feed-forward layer over its tokens."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attention = CrossAttention(dim, heads=attention_heads(dim))
        self.feed_forward = FeedForward(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(x, x)
        return x + self.feed_forward(x)


class UMSE(EncodedPair):
    """EHR and image tokens in one set; fusion through bottleneck tokens, image skipped when
    missing."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        h, c = self.hidden, self.channels
        self.ehr_token = nn.Linear(h, h)
        self.cxr_tokens = MapTokens(c, h)
        self.modality = nn.Parameter(torch.randn(2, h) * 0.02)
        self.bottleneck = nn.Parameter(torch.randn(N_BOTTLENECK, h) * 0.02)
        self.ehr_stream = _Stream(h)
        self.cxr_stream = _Stream(h)
        self.norm = nn.LayerNorm(2 * h)
        self.head = nn.Linear(2 * h, self.out_dim)

    def forward(self, batch: Batch) -> torch.Tensor:
        ehr = self.drop(self._ehr(self.ehr, batch))
        n = batch.n_readouts
        bottleneck = self.bottleneck.unsqueeze(0).expand(n, -1, -1)
        ehr_tok = (self.ehr_token(ehr) + self.modality[0]).unsqueeze(1)
        x_e = self.ehr_stream(torch.cat([ehr_tok, bottleneck], dim=1))
        ehr_out, fused = x_e[:, 0], x_e[:, 1:]
        has = batch.has_image
        if bool(has.any()):
            rows = has.nonzero(as_tuple=True)[0]
            tokens = self.cxr_tokens(self._maps(self.cxr, batch)) + self.modality[1]
            x_v = self.cxr_stream(torch.cat([tokens[batch.ro_img[rows]], bottleneck[rows]], 1))
            from_cxr = x_v[:, -N_BOTTLENECK:]
            fused = fused.index_put((rows,), 0.5 * (fused[rows] + from_cxr))
        return self.head(self.norm(torch.cat([ehr_out, fused.mean(dim=1)], dim=1)))

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The task loss, in training on the batch with some images dropped."""
        y = batch.y
        assert y is not None
        if self.training:
            drop = torch.rand(batch.n_readouts) < MODALITY_DROPOUT
            ro_img = torch.where(drop, torch.full_like(batch.ro_img, -1), batch.ro_img)
            batch = dataclasses.replace(batch, ro_img=ro_img)
        return {"task": task_loss(self.kind, self(batch), y)}
