"""UTDE: a gated time embedding of the EHR, fused with the image by interleaved attention.

Follows Zhang, Zhang, Kang, Suchow and Zhao, "Improving Medical Predictions by Irregular
Multimodal Electronic Health Records Modeling", ICML 2023. For irregular time series the
paper proposes a unified time-discretization embedding (UTDE): an imputation-based
embedding (the series discretized to regular steps with imputed values) and a learned
attention-based embedding (time attention of reference time points over the observations,
as mTAND) are combined by a learned gate; the modalities are then fused by interleaved
cross-modal attention across their time steps. CareBench uses it for the EHR and the chest
X-ray.

Kept: the two embeddings of the EHR and the gate that mixes them, element-wise
(``g * imputation + (1 - g) * attention``, ``g`` from a two-layer perceptron of both), and
interleaved fusion: the EHR tokens attend to the image's tokens, the image's tokens to the
EHR tokens, then self-attention over both.

Simplified, and why: the model reads the EHR only as the shared encoder's LSTM state at
each read-out (the streaming gateway keeps one recurrent state per stay and hands the model
that state), not the observations with their times. The LSTM runs over the benchmark's
discretized series, whose gaps are imputed, so the imputation embedding is that state read
as ``REF_POINTS`` tokens (a linear map); the attention embedding is time attention of
``REF_POINTS`` learned reference-point queries over those tokens (with learned reference
positions as keys), the nearest the per-read-out state allows to mTAND's attention over
raw observations. The image's tokens are the positions of the CNN's last feature maps,
average-pooled to at most ``IMAGE_GRID`` x ``IMAGE_GRID``, with Fourier position features;
one interleaved layer; small sizes for a 2-core machine (every read-out of an hourly task
carries its own tokens through the interleaved layer, so their number sets the cost).

No image (per read-out ``batch.has_image``; UTDE assumes complete modalities): the image is
replaced by one learned "no image" token, and the unit's image tokens are that token alone
(the other positions are masked out of every attention and of the read-out), so nothing
of other units' images reaches it.

Hyperparameters: ``WIDTH`` = 64, ``REF_POINTS`` = 4, ``HEADS`` = 4, ``IMAGE_GRID`` = 2,
gate hidden width 64, feed-forward width 2x, 4 Fourier bands, one interleaved layer; the
read-out is [mean of the EHR tokens, mean of the image tokens] into a linear head; dropout
(the run's ``dropout``) on the EHR state, in the gate and before the head. No auxiliary
loss.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from scoring.baselines.batch import Batch
from scoring.baselines.models import _TwoEncoders
from scoring.baselines.strategies.blocks import CrossAttention, FeedForward, MapTokens

WIDTH = 64
REF_POINTS = 4
HEADS = 4
IMAGE_GRID = 2  # the image's maps average-pooled to at most 2 x 2 tokens


class UTDE(_TwoEncoders):
    """Gated imputation and attention embeddings of the EHR state, interleaved attention
    with the image's tokens (one learned token when there is no image)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        h, c = self.ehr.hidden, self.cxr.out_channels
        dropout = float(self.drop.p)
        self.imputation = nn.Linear(h, REF_POINTS * WIDTH)
        self.ref_queries = nn.Parameter(torch.randn(REF_POINTS, WIDTH) * 0.02)
        self.ref_positions = nn.Parameter(torch.randn(REF_POINTS, WIDTH) * 0.02)
        self.time_attention = CrossAttention(WIDTH, heads=HEADS)
        self.gate = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * WIDTH, WIDTH),
            nn.ReLU(),
            nn.Linear(WIDTH, WIDTH),
            nn.Sigmoid(),
        )
        self.img_tokens = MapTokens(c, WIDTH)
        # The learned input of a unit without an image, in place of _TwoEncoders' vector.
        del self.proj, self.no_image
        self.no_image = nn.Parameter(torch.zeros(WIDTH))
        self.ehr_to_img = CrossAttention(WIDTH, heads=HEADS)
        self.img_to_ehr = CrossAttention(WIDTH, heads=HEADS)
        self.joint = CrossAttention(WIDTH, heads=HEADS)
        self.ff = FeedForward(WIDTH)
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(2 * WIDTH, self.out_dim)

    def ehr_embedding(self, batch: Batch) -> torch.Tensor:
        """The gated time embedding of each read-out's EHR state, ``(R, REF_POINTS, W)``."""
        ehr = self.drop(self._ehr(self.ehr, batch))
        n = ehr.shape[0]
        imp = self.imputation(ehr).view(n, REF_POINTS, WIDTH)
        queries = self.ref_queries.unsqueeze(0).expand(n, -1, -1)
        att = queries + self.time_attention(queries, imp + self.ref_positions)
        g = self.gate(torch.cat([imp, att], dim=2))
        return g * imp + (1.0 - g) * att

    def image_tokens(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Image tokens per read-out ``(R, P, W)`` and their mask ``(R, P)``: the map
        positions of the unit's image, or the no-image token followed by masked padding."""
        maps = self._maps(self.cxr, batch)
        h, w = maps.shape[2:]
        maps = nn.functional.adaptive_avg_pool2d(maps, (min(h, IMAGE_GRID), min(w, IMAGE_GRID)))
        per_image = self.img_tokens(maps)  # (K, P, W)
        n, p = batch.n_readouts, per_image.shape[1]
        stand_in = torch.cat(
            [self.no_image.view(1, 1, -1), self.no_image.new_zeros(1, p - 1, WIDTH)], dim=1
        )
        table = torch.cat([per_image, stand_in], dim=0)
        has = batch.has_image
        tokens = table[torch.where(has, batch.ro_img, per_image.shape[0])]
        mask = torch.ones(n, p, dtype=torch.bool)
        mask[:, 1:] = has.unsqueeze(1)
        return tokens, mask

    def forward(self, batch: Batch) -> torch.Tensor:
        e = self.ehr_embedding(batch)  # (R, T, W)
        img, mask = self.image_tokens(batch)  # (R, P, W), (R, P)
        e = e + self.ehr_to_img(e, img, mask)
        img = img + self.img_to_ehr(img, e)
        both = torch.cat([e, img], dim=1)
        keys = torch.cat([torch.ones(e.shape[:2], dtype=torch.bool), mask], dim=1)
        both = both + self.joint(both, both, keys)
        both = self.norm(both + self.ff(both))
        e, img = both[:, :REF_POINTS], both[:, REF_POINTS:]
        w = mask.unsqueeze(2).to(img.dtype)
        img_mean = (img * w).sum(dim=1) / w.sum(dim=1)
        return self.head(self.drop(torch.cat([e.mean(dim=1), img_mean], dim=1)))
