"""Flex-MoE: a missing-modality bank and a sparse mixture of experts routed by the
combination of modalities present.

Follows Yun, Choi, Zhang, Jeong, Kim, Kang, Song and Chen, "Flex-MoE: Modeling Arbitrary
Modality Combination via the Flexible Mixture-of-Experts", NeurIPS 2024. Each modality is
embedded as a few tokens; a modality a sample lacks is filled from a learned missing-modality
bank, indexed by the combination of modalities the sample does have and by the missing
modality. The tokens go through transformer layers whose feed-forward part is a sparse
mixture of experts (SMoE): samples with every modality are routed by a learned router to
their top-k experts (the G-router, with a load-balancing loss so that all experts learn),
samples with fewer modalities go to the expert designated for their combination (the
S-router), so experts specialise in combinations.

Kept: the bank (one entry of ``PATCHES`` tokens per combination and modality; of the three
combinations of EHR and image, the EHR-only one is used, since every unit has its EHR), the
patch adapters (a modality's vector to ``PATCHES`` tokens: linear, layer norm, dropout, as
CareBench does), top-k routing of full-modality units, the designated expert for the
others (expert ``c`` for combination ``c``), the load-balancing loss.

Simplified, and why: one shared EHR encoder whose LSTM state per read-out is the EHR input
(the streaming gateway keeps one recurrent state per stay) and one CNN whose pooled
features are the image input; one transformer layer with ``EXPERTS`` small experts, all
computed and weighted by the routing (exactly equivalent to sparse dispatch, and simpler on
a CPU); routing is decided per unit from its own modalities, never per batch, so a unit's
prediction does not depend on the batch. The load-balancing loss is Switch Transformer's
(``EXPERTS * sum_e f_e * P_e`` over the tokens of full-modality units: ``f_e`` the share of
top-k slots given to expert ``e``, ``P_e`` its mean router probability).

No image (per read-out ``batch.has_image``): the image's tokens come from the bank's entry
for the EHR-only combination and every token of the unit goes to that combination's expert;
the image encoder is not involved.

Hyperparameters: ``WIDTH`` = 64, ``PATCHES`` = 4 tokens per modality, ``EXPERTS`` = 4 with
``TOP_K`` = 2, ``HEADS`` = 4, expert width 2x, load-balancing weight ``GATE_WEIGHT`` = 0.01;
dropout (the run's ``dropout``) in the patch adapters and before the head, none inside the
experts.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from scoring.baselines.batch import Batch
from scoring.baselines.encoders import pool
from scoring.baselines.models import _lookup, _TwoEncoders, task_loss
from scoring.baselines.strategies.blocks import CrossAttention

WIDTH = 64
PATCHES = 4
EXPERTS = 4
TOP_K = 2
HEADS = 4
GATE_WEIGHT = 0.01
# Combinations of the two modalities (0: EHR, 1: image), as Flex-MoE numbers them: every
# non-empty subset, smaller ones first.
EHR_ONLY, IMAGE_ONLY, BOTH = 0, 1, 2
N_COMBINATIONS = 3


class PatchAdapter(nn.Module):
    """A modality's vector ``(N, c)`` as ``PATCHES`` tokens ``(N, PATCHES, W)``."""

    def __init__(self, dim_in: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, PATCHES * WIDTH)
        self.norm = nn.LayerNorm(WIDTH)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.norm(self.proj(x).view(x.shape[0], PATCHES, WIDTH)))


class SparseExperts(nn.Module):
    """``EXPERTS`` two-layer perceptrons and a router.

    ``forward(x, combination)`` with tokens ``(N, L, W)`` and each unit's combination
    ``(N,)``: a full-modality unit's tokens are mixed from their ``TOP_K`` experts
    (softmax over the chosen router logits), another unit's tokens from its combination's
    expert alone. Returns the output and the router statistics of the full-modality tokens
    (for the load-balancing loss).
    """

    def __init__(self) -> None:
        super().__init__()
        hidden = 2 * WIDTH
        self.norm = nn.LayerNorm(WIDTH)
        self.router = nn.Linear(WIDTH, EXPERTS)
        bound1, bound2 = 1 / math.sqrt(WIDTH), 1 / math.sqrt(hidden)
        self.w1 = nn.Parameter(torch.empty(EXPERTS, WIDTH, hidden).uniform_(-bound1, bound1))
        self.b1 = nn.Parameter(torch.zeros(EXPERTS, hidden))
        self.w2 = nn.Parameter(torch.empty(EXPERTS, hidden, WIDTH).uniform_(-bound2, bound2))
        self.b2 = nn.Parameter(torch.zeros(EXPERTS, WIDTH))

    def weights(self, x: torch.Tensor, combination: torch.Tensor) -> dict[str, torch.Tensor]:
        """Routing weights ``(N, L, EXPERTS)`` (rows sum to 1, at most ``TOP_K`` non-zero),
        the router's probabilities and the top-k mask."""
        logits = self.router(x)  # (N, L, E)
        top = logits.topk(TOP_K, dim=-1)
        chosen = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, top.indices, True)
        g_weights = torch.softmax(logits.masked_fill(~chosen, float("-inf")), dim=-1)
        designated = nn.functional.one_hot(combination, EXPERTS).to(x.dtype)  # (N, E)
        full = (combination == BOTH).view(-1, 1, 1)
        w = torch.where(full, g_weights, designated.unsqueeze(1).expand_as(logits))
        return {"weights": w, "probs": torch.softmax(logits, dim=-1), "chosen": chosen}

    def forward(
        self, x: torch.Tensor, combination: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        h = self.norm(x)
        route = self.weights(h, combination)
        inner = torch.einsum("nld,edh->nleh", h, self.w1) + self.b1
        out = torch.einsum("nleh,ehd->nled", nn.functional.gelu(inner), self.w2)
        out = out + self.b2  # (N, L, E, W)
        return (route["weights"].unsqueeze(-1) * out).sum(dim=2), route


def load_balancing_loss(route: dict[str, torch.Tensor], combination: torch.Tensor) -> torch.Tensor:
    """Switch Transformer's auxiliary loss over the tokens of full-modality units (zero when
    the batch has none): ``EXPERTS * sum_e f_e * P_e``; 1 when the load is even."""
    full = combination == BOTH
    if not bool(full.any()):
        return route["probs"].sum() * 0.0
    chosen = route["chosen"][full].reshape(-1, EXPERTS).float()
    probs = route["probs"][full].reshape(-1, EXPERTS)
    share = chosen.mean(dim=0) / TOP_K
    return EXPERTS * (share * probs.mean(dim=0)).sum()


class FlexMoE(_TwoEncoders):
    """Modality tokens (the bank's where the image is missing), self-attention and a
    sparse mixture of experts routed by the unit's modality combination, mean-pooled into a
    linear head."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        h, c = self.ehr.hidden, self.cxr.out_channels
        dropout = float(self.drop.p)
        self.ehr_patches = PatchAdapter(h, dropout)
        self.img_patches = PatchAdapter(c, dropout)
        # The missing-modality bank: (combination, modality, patch, width).
        self.bank = nn.Parameter(torch.randn(N_COMBINATIONS, 2, PATCHES, WIDTH) * 0.02)
        self.attn = CrossAttention(WIDTH, heads=HEADS)
        self.experts = SparseExperts()
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, self.out_dim)
        # A missing image is filled from the bank, not _TwoEncoders' projected vector.
        del self.proj, self.no_image

    def _forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        ehr = self._ehr(self.ehr, batch)  # (R, h)
        has = batch.has_image
        combination = torch.where(has, BOTH, EHR_ONLY)
        ehr_tok = self.ehr_patches(ehr)  # (R, P, W)
        pooled = pool(self._maps(self.cxr, batch))  # (K, c)
        img_table = self.img_patches(pooled)  # (K, P, W)
        img_tok = _lookup(img_table, batch.ro_img, self.bank[EHR_ONLY, 1])
        x = torch.cat([ehr_tok, img_tok], dim=1)
        x = x + self.attn(x, x)
        moe, route = self.experts(x, combination)
        x = x + moe
        logits = self.head(self.drop(self.norm(x.mean(dim=1))))
        return logits, combination, route

    def forward(self, batch: Batch) -> torch.Tensor:
        return self._forward(batch)[0]

    def auxiliary_losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits and the auxiliary loss terms (here the load-balancing loss)."""
        logits, combination, route = self._forward(batch)
        return logits, {"load_balancing": load_balancing_loss(route, combination)}

    def training_loss(self, batch: Batch) -> torch.Tensor:
        assert batch.y is not None
        logits, aux = self.auxiliary_losses(batch)
        return task_loss(self.kind, logits, batch.y) + GATE_WEIGHT * aux["load_balancing"]
