"""M3Care: a missing image's representation imputed from similar patients in latent space.

After Zhang, Chu, Ma, Zhang, Wang, Xie, Li and Ma, "M3Care: Learning with Missing Modalities
in Multimodal Healthcare Data", KDD 2022.

What it keeps
    Patients are compared in a learned latent space of the modality every unit has (the
    EHR): a learned kernel (a linear map, then cosine similarity with temperature
    ``TEMPERATURE`` = 0.1) scores a unit against other patients, the dissimilar ones are
    filtered out (only the ``NEIGHBOURS`` = 16 most similar count, the paper's learned
    similarity threshold made a fixed count) and **a unit without an image gets the
    similarity-weighted mean of those patients' image representations** in place of its own.
    The kernel is task-guided: it is trained by the task loss through the imputed
    representations, and by the imputation loss (``LAMBDA_IMPUTE`` = 0.5): on units that
    have an image, the mean squared difference between the representation imputed for them
    and their own. The two modality representations (each with a learned modality
    embedding) are fused by one transformer layer (pre-norm attention over the two tokens
    and a feed-forward block, ``heads`` = 4 when the width allows) and their mean feeds a
    linear head.

What it simplifies, and why
    The paper compares each patient with the other patients of its batch. Here a unit's
    prediction must depend on its own inputs only (the platform predicts and streams units
    in batches of any make-up), so the "other patients" are a fixed bank of
    ``BANK`` = 128 training patients with an image: their EHR states and pooled image
    features, written first in first out during training (one entry per training sequence
    with an image, from the batches before the current one, without gradient) and frozen at
    prediction. A model that has not trained yet has an empty bank and uses a learned "no
    image" vector instead. One EHR LSTM and one CNN (the task's trained unimodal encoders,
    fine-tuned) replace the paper's encoders, since the streaming gateway keeps one recurrent
    state per stay and one set of feature maps per image and the 2-core machine trains at
    most about one and a half joint fusion models' worth of work per task. Sizes:
    representations of the EHR state's size (``ehr_hidden``).

What follows from the fixed count
    The imputed representation jumps when two bank patients swap the 16th and 17th places,
    and a trained kernel can leave many of them almost tied (on the demo's phenotyping,
    half of the units' 16th and 17th similarities are within 5e-6 of each other). A change
    of 1e-7 in a unit's EHR state, such as the streamed recurrent state against the one
    read from the whole file, then moves some predictions by a few hundredths; nudging the
    state by 1e-6 in the batch path moves them as much (``docs/baselines.md``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from scoring.baselines.batch import Batch
from scoring.baselines.encoders import pool
from scoring.baselines.models import _lookup, task_loss
from scoring.baselines.strategies.blocks import CrossAttention, FeedForward
from scoring.baselines.strategies.missing import EncodedPair, attention_heads, masked_mean

BANK = 128
NEIGHBOURS = 16
TEMPERATURE = 0.1
LAMBDA_IMPUTE = 0.5


class _Parts(NamedTuple):
    logits: torch.Tensor
    state: torch.Tensor  # (R, h) EHR state before dropout
    pooled: torch.Tensor  # (R, c) pooled image features, zeros without an image
    own: torch.Tensor  # (R, h) the image's own representation
    imputed: torch.Tensor  # (R, h) the representation imputed from similar patients
    has: torch.Tensor


class M3Care(EncodedPair):
    """Image representation imputed from a bank of similar training patients when missing."""

    bank_ehr: torch.Tensor  # (BANK, h) EHR states of the bank's patients
    bank_img: torch.Tensor  # (BANK, c) their pooled image features
    bank_used: torch.Tensor  # (BANK,) slots written so far
    bank_next: torch.Tensor  # () the next slot to write

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        h, c = self.hidden, self.channels
        self.similarity = nn.Linear(h, h)
        self.cxr_project = nn.Linear(c, h)
        self.no_image = nn.Parameter(torch.zeros(h))
        self.modality = nn.Parameter(torch.randn(2, h) * 0.02)
        heads = attention_heads(h)
        self.attention = CrossAttention(h, heads=heads)
        self.feed_forward = FeedForward(h)
        self.norm = nn.LayerNorm(h)
        self.head = nn.Linear(h, self.out_dim)
        self.register_buffer("bank_ehr", torch.zeros(BANK, h))
        self.register_buffer("bank_img", torch.zeros(BANK, c))
        self.register_buffer("bank_used", torch.zeros(BANK, dtype=torch.bool))
        self.register_buffer("bank_next", torch.zeros((), dtype=torch.int64))

    def impute(self, state: torch.Tensor) -> torch.Tensor:
        """The similarity-weighted image representation of the bank's closest patients."""
        used = self.bank_used
        if not bool(used.any()):
            return self.no_image.unsqueeze(0).expand(state.shape[0], -1)
        q = nn.functional.normalize(self.similarity(state), dim=1)
        keys = nn.functional.normalize(self.similarity(self.bank_ehr[used]), dim=1)
        sims = q @ keys.T / TEMPERATURE  # (R, n_used)
        k = min(NEIGHBOURS, sims.shape[1])
        kth = sims.topk(k, dim=1).values[:, -1:]
        sims = sims.masked_fill(sims < kth, float("-inf"))
        values = self.cxr_project(self.bank_img[used])
        return torch.softmax(sims, dim=1) @ values

    def parts(self, batch: Batch) -> _Parts:
        state = self._ehr(self.ehr, batch)
        ehr = self.drop(state)
        pooled_k = pool(self._maps(self.cxr, batch))
        pooled = _lookup(pooled_k, batch.ro_img, pooled_k.new_zeros(pooled_k.shape[1]))
        has = batch.has_image
        own = self.cxr_project(pooled)
        imputed = self.impute(state)
        img = torch.where(has.unsqueeze(1), own, imputed)
        tokens = torch.stack([ehr, img], dim=1) + self.modality  # (R, 2, h)
        tokens = tokens + self.attention(tokens, tokens)
        tokens = tokens + self.feed_forward(tokens)
        logits = self.head(self.norm(tokens).mean(dim=1))
        return _Parts(logits, state, pooled, own, imputed, has)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.parts(batch).logits

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Task loss and the imputation loss; in training, then adds the batch's patients
        with an image to the bank."""
        assert batch.y is not None
        p = self.parts(batch)
        gap = (p.imputed - p.own.detach()).pow(2).mean(dim=1)
        terms = {
            "task": task_loss(self.kind, p.logits, batch.y),
            "imputation": LAMBDA_IMPUTE * masked_mean(gap, p.has),
        }
        if self.training:
            self._remember(p.state.detach(), p.pooled.detach(), p.has, batch.ro_seq)
        return terms

    @torch.no_grad()
    def _remember(
        self, state: torch.Tensor, pooled: torch.Tensor, has: torch.Tensor, seq: torch.Tensor
    ) -> None:
        """Write the last read-out with an image of each sequence into the bank."""
        idx = has.nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            return
        s = seq[idx]
        last = torch.ones_like(s, dtype=torch.bool)
        last[:-1] = s[1:] != s[:-1]
        idx = idx[last][-BANK:]
        slots = (self.bank_next + torch.arange(idx.numel())) % BANK
        self.bank_ehr[slots] = state[idx]
        self.bank_img[slots] = pooled[idx]
        self.bank_used[slots] = True
        self.bank_next.copy_((self.bank_next + idx.numel()) % BANK)
