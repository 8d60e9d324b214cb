"""ShaSpec: shared and specific features, the missing modality's made from the shared ones.

After Wang, Chen, Ma, Avery, Hull, Carneiro and Wang, "Multi-modal Learning with Missing
Modality via Shared-Specific Feature Modelling", CVPR 2023.

What it keeps
    One shared encoder, the same weights for both modalities, and one specific encoder per
    modality. Each modality's feature is its shared feature plus a projection of [shared,
    specific] (the paper's residual fusion block); the decoder (a linear head) reads the
    two modalities' features concatenated. **Without an image**, the image's features are
    made from the shared features of the modality that is there: its shared feature is the
    EHR's shared feature and its specific feature is replaced by it too, as in the paper
    (the mean of the available modalities' shared features; here there is one).

    Training objectives (:meth:`ShaSpec.losses`, weights as in CareBench's configuration):
    the task loss; the domain classification loss (``BETA`` = 0.02), a linear classifier
    telling from the specific features which modality they come from, so that they keep
    what is particular to it; and the distance loss (``ALPHA`` = 0.1), the mean absolute
    difference between the two modalities' shared features on units with an image, so that
    the shared encoder maps both to the same space.

What it simplifies, and why
    The paper's separate convolutional encoders per modality become two-layer networks on
    the outputs of the platform's one EHR LSTM and one CNN (the task's trained unimodal
    encoders, fine-tuned): the streaming gateway keeps one recurrent state per stay and one
    set of feature maps per image, and the 2-core machine trains at most about one and a half
    joint fusion models' worth of work per task. The image's pooled features first go
    through a linear adapter to the EHR state's size so that one shared encoder can read both.
    Weight standardisation is left out (the networks here are small and have no
    normalisation layers). Sizes: features of the EHR state's size (``ehr_hidden``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from scoring.baselines.batch import Batch
from scoring.baselines.models import task_loss
from scoring.baselines.strategies.missing import EncodedPair, masked_mean, mlp

ALPHA = 0.1
BETA = 0.02
EHR_DOMAIN, CXR_DOMAIN = 0, 1


class _Parts(NamedTuple):
    logits: torch.Tensor
    shared_ehr: torch.Tensor
    shared_cxr: torch.Tensor
    spec_ehr: torch.Tensor
    spec_cxr: torch.Tensor
    has: torch.Tensor


class ShaSpec(EncodedPair):
    """Shared and specific features; a missing image's features come from the EHR's shared."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        h, c = self.hidden, self.channels
        self.cxr_adapter = nn.Linear(c, h)
        self.shared = mlp(h, h)
        self.ehr_specific = mlp(h, h)
        self.cxr_specific = mlp(c, h)
        self.fuse_ehr = nn.Linear(2 * h, h)
        self.fuse_cxr = nn.Linear(2 * h, h)
        self.domain = nn.Linear(h, 2)
        self.head = nn.Linear(2 * h, self.out_dim)

    def parts(self, batch: Batch) -> _Parts:
        ehr, img, has = self.encode(batch)
        s_e, d_e = self.shared(ehr), self.ehr_specific(ehr)
        s_v, d_v = self.shared(self.cxr_adapter(img)), self.cxr_specific(img)
        hm = has.unsqueeze(1)
        # No image: both of its parts are the shared feature of the EHR.
        s_v_in = torch.where(hm, s_v, s_e)
        d_v_in = torch.where(hm, d_v, s_e)
        f_e = s_e + self.fuse_ehr(torch.cat([s_e, d_e], dim=1))
        f_v = s_v_in + self.fuse_cxr(torch.cat([s_v_in, d_v_in], dim=1))
        logits = self.head(torch.cat([f_e, f_v], dim=1))
        return _Parts(logits, s_e, s_v, d_e, d_v, has)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.parts(batch).logits

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Task loss, domain classification of the specific features, shared distance."""
        assert batch.y is not None
        p = self.parts(batch)
        ce = nn.functional.cross_entropy
        ehr_domain = ce(
            self.domain(p.spec_ehr), torch.full_like(p.has, EHR_DOMAIN, dtype=torch.long)
        )
        cxr_domain = ce(
            self.domain(p.spec_cxr),
            torch.full_like(p.has, CXR_DOMAIN, dtype=torch.long),
            reduction="none",
        )
        domain = 0.5 * (ehr_domain + masked_mean(cxr_domain, p.has))
        distance = masked_mean((p.shared_ehr - p.shared_cxr).abs().mean(dim=1), p.has)
        return {
            "task": task_loss(self.kind, p.logits, batch.y),
            "domain": BETA * domain,
            "distance": ALPHA * distance,
        }
