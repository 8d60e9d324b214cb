"""SMIL: a missing image reconstructed as a weighted sum of learned priors.

After Ma, Ren, Zhao, Testuggine and Peng, "SMIL: Multimodal Learning with Severely Missing
Modality", AAAI 2021.

What it keeps
    The image's representation lives near a few prototypes: ``N_PRIORS`` = 10 learned
    priors (the paper's cluster centres of the image features). **Without an image, the
    image's representation is reconstructed from the EHR** as a weighted sum of the priors,
    the weights a softmax of a two-layer network's output on the EHR state. The weights are
    Bayesian as in the paper, but with one Monte Carlo sample: in training the network's
    logits are perturbed by Gaussian noise (standard deviation ``WEIGHT_NOISE`` = 0.5), at
    prediction their mean is used, so prediction is deterministic. The EHR state and the
    image's representation (its own, projected, or the reconstruction) are concatenated
    into a linear head.

    Feature regularisation (:meth:`SMIL.losses`, weights and temperature as in CareBench's
    configuration), on units with an image: the reconstruction loss (``ALPHA`` = 0.05), the
    mean squared difference between the reconstruction and the image's own representation,
    and the distillation loss (``BETA`` = 0.05), which makes the prediction made with the
    reconstruction follow the one made with the real image (softened with temperature
    ``TEMPERATURE`` = 3, scaled by its square; the real image's prediction is the teacher
    and receives no gradient from it).

What it simplifies, and why
    The paper's meta-learning (an inner gradient step per batch and a regularisation network
    learned in the outer loop) would at least double the cost of a step; the 2-core machine
    trains at most about one and a half joint fusion models' worth of work per task, so the
    regularisation is the two losses above and the noise on the weights. The priors are
    learned end to end from a small random start instead of being K-means centres computed
    beforehand (the encoders are only loaded after the model is built). One EHR LSTM and one
    CNN (the task's trained unimodal encoders, fine-tuned) replace the paper's networks, as
    the streaming gateway keeps one recurrent state per stay and one set of feature maps per
    image. Sizes: representations of the EHR state's size (``ehr_hidden``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from scoring.baselines.batch import Batch
from scoring.baselines.models import task_loss
from scoring.baselines.strategies.missing import EncodedPair, masked_mean

N_PRIORS = 10
WEIGHT_NOISE = 0.5
ALPHA = 0.05
BETA = 0.05
TEMPERATURE = 3.0


class _Parts(NamedTuple):
    logits: torch.Tensor  # the prediction (own image where there is one)
    recon_logits: torch.Tensor  # the prediction with the reconstruction for every unit
    own: torch.Tensor
    recon: torch.Tensor
    has: torch.Tensor


class SMIL(EncodedPair):
    """Missing image reconstructed from the EHR as a weighted sum of learned priors."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        h, c = self.hidden, self.channels
        self.cxr_project = nn.Linear(c, h)
        self.priors = nn.Parameter(torch.randn(N_PRIORS, h) * 0.1)
        self.prior_weights = nn.Sequential(
            nn.Linear(h, h), nn.ReLU(inplace=True), nn.Linear(h, N_PRIORS)
        )
        self.head = nn.Linear(2 * h, self.out_dim)

    def reconstruct(self, ehr: torch.Tensor) -> torch.Tensor:
        """The image representation reconstructed from the EHR state, ``(R, h)``."""
        logits = self.prior_weights(ehr)
        if self.training:
            logits = logits + WEIGHT_NOISE * torch.randn_like(logits)
        return torch.softmax(logits, dim=1) @ self.priors

    def parts(self, batch: Batch) -> _Parts:
        ehr, img, has = self.encode(batch)
        own = self.cxr_project(img)
        recon = self.reconstruct(ehr)
        logits = self.head(torch.cat([ehr, torch.where(has.unsqueeze(1), own, recon)], dim=1))
        recon_logits = self.head(torch.cat([ehr, recon], dim=1))
        return _Parts(logits, recon_logits, own, recon, has)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.parts(batch).logits

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Task loss, reconstruction and distillation on the units with an image."""
        assert batch.y is not None
        p = self.parts(batch)
        gap = (p.recon - p.own.detach()).pow(2).mean(dim=1)
        teacher = p.logits.detach() / TEMPERATURE
        student = p.recon_logits / TEMPERATURE
        if self.kind == "los":
            kd = nn.functional.kl_div(
                torch.log_softmax(student, dim=1),
                torch.log_softmax(teacher, dim=1),
                reduction="none",
                log_target=True,
            ).sum(dim=1)
        else:
            kd = nn.functional.binary_cross_entropy_with_logits(
                student, torch.sigmoid(teacher), reduction="none"
            ) - nn.functional.binary_cross_entropy_with_logits(
                teacher, torch.sigmoid(teacher), reduction="none"
            )
            kd = kd.mean(dim=1)
        return {
            "task": task_loss(self.kind, p.logits, batch.y),
            "reconstruction": ALPHA * masked_mean(gap, p.has),
            "distillation": BETA * TEMPERATURE**2 * masked_mean(kd, p.has),
        }
