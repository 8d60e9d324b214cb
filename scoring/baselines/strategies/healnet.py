"""HEALNet: hybrid early fusion through a shared latent array.

Follows Hemker, Simidjievski and Jamnik, "HEALNet: Multimodal Fusion for Heterogeneous
Biomedical Data", NeurIPS 2024. HEALNet keeps one latent array shared by all modalities and,
layer after layer, updates it by cross-attention to each modality in turn: each modality has
its own attention (and feed-forward) weights, the latent array passes between them, so the
modalities are fused early without concatenating their raw inputs; a modality a sample does
not have is skipped (its update is left out), so the model needs no imputation. The latent
array is read out by averaging it into a linear head.

Kept: the shared latent array, the per-layer order of updates (EHR, then image, then latent
self-attention), modality-specific cross-attention and feed-forward weights, Fourier position
features for the image's spatial tokens (as the Perceiver HEALNet builds on), and the skip of
a missing modality.

Simplified, and why: the raw EHR series is not a HEALNet input here. The model reads the EHR
only as the shared encoder's LSTM state at each read-out (the streaming gateway keeps one
recurrent state per stay and hands the model that state), so the state is unrolled by a
linear map into ``EHR_TOKENS`` tokens that the latent array attends to. The image's tokens
are the positions of the CNN's last feature maps. GELU feed-forward blocks replace HEALNet's
self-normalising (SELU) ones, and the weights are not shared across layers; the sizes are
small so that training fits a 2-core machine.

No image (per read-out ``batch.has_image``): the image cross-attention and its feed-forward
block are skipped for that unit, exactly as HEALNet skips a missing modality; the latent
array carries on from its EHR update. Nothing of the image branch reaches such a unit.

Hyperparameters: latent array ``LATENTS`` = 8 vectors of width ``WIDTH`` = 64, ``DEPTH`` = 2
fusion layers, ``HEADS`` = 4 attention heads, ``EHR_TOKENS`` = 8, feed-forward width 2x,
4 Fourier bands; dropout on the EHR state and before the head (the run's ``dropout``), none
inside the fusion layers (dropout's random masks are a large share of a CPU step there). No
auxiliary loss (the task loss only).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import torch
from torch import nn

from scoring.baselines.batch import Batch
from scoring.baselines.models import _TwoEncoders
from scoring.baselines.strategies.blocks import CrossAttention, FeedForward, MapTokens

LATENTS = 8
WIDTH = 64
DEPTH = 2
HEADS = 4
EHR_TOKENS = 8


class _Layer(nn.Module):
    """One fusion layer: per-modality cross-attention and feed-forward, then the latent
    array's self-attention and feed-forward."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn_ehr = CrossAttention(dim, heads=heads)
        self.ff_ehr = FeedForward(dim)
        self.attn_img = CrossAttention(dim, heads=heads)
        self.ff_img = FeedForward(dim)
        self.attn_self = CrossAttention(dim, heads=heads)
        self.ff_self = FeedForward(dim)


class HEALNet(_TwoEncoders):
    """A shared latent array updated by cross-attention to the EHR, then to the image
    (skipped when the unit has none), then by self-attention; averaged into a linear head."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        h, c = self.ehr.hidden, self.cxr.out_channels
        self.latents = nn.Parameter(torch.randn(LATENTS, WIDTH) * 0.02)
        self.ehr_tokens = nn.Linear(h, EHR_TOKENS * WIDTH)
        self.img_tokens = MapTokens(c, WIDTH)
        self.layers = nn.ModuleList(_Layer(WIDTH, HEADS) for _ in range(DEPTH))
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, self.out_dim)
        # _TwoEncoders' projection and no-image vector are not used: a unit without an image
        # skips the image updates instead of being given a stand-in.
        del self.proj, self.no_image

    def forward(self, batch: Batch) -> torch.Tensor:
        ehr = self.drop(self._ehr(self.ehr, batch))  # (R, h)
        n = ehr.shape[0]
        ehr_tok = self.ehr_tokens(ehr).view(n, EHR_TOKENS, WIDTH)
        has = batch.has_image
        idx = has.nonzero(as_tuple=True)[0]
        img_tok = None
        if len(idx):
            maps = self._maps(self.cxr, batch)
            img_tok = self.img_tokens(maps)[batch.ro_img[idx]]  # (R_img, hw, W)
        z = self.latents.unsqueeze(0).expand(n, -1, -1)
        # The list holds _Layer modules only (built above); torch types its items as Module.
        for layer in cast("Iterable[_Layer]", self.layers):
            z = z + layer.attn_ehr(z, ehr_tok)
            z = z + layer.ff_ehr(z)
            if img_tok is not None:
                zi = z[idx]
                zi = zi + layer.attn_img(zi, img_tok)
                zi = zi + layer.ff_img(zi)
                z = z.index_copy(0, idx, zi)
            z = z + layer.attn_self(z, z)
            z = z + layer.ff_self(z)
        return self.head(self.drop(self.norm(z.mean(dim=1))))
