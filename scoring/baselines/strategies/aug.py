"""AUG: sustained boosting of each modality's classifier, with classifiers assigned to the
weaker modality as training goes.

Follows Jiang, Huang and Yang, "Rethinking Multimodal Learning from the Perspective of
Mitigating Classification Ability Disproportion", NeurIPS 2025, the method CareBench calls
AUG. Modality imbalance is read as a gap in classification ability between the modalities'
classifiers. Each modality has its own classifier, built as a boosting ensemble: every added
learner is trained on the classification error of the whole ensemble and on the residual
error the ensemble before it left (sustained boosting). Adaptive classifier assignment (ACA)
compares the modalities' training scores and gives a new learner to the weaker modality's
ensemble, so its classification ability catches up. The prediction is a fixed-weight mix of
the two ensembles' logits.

Kept: a learner is an embedding (linear and ReLU) of the modality's representation into
the classifier width followed by a linear output layer shared by every learner of both
modalities (as CareBench); the loss of a modality whose ensemble has learners
``f_0 .. f_t`` is ``l(F_t) + l(F_{t-1}) + l(sg(F_{t-1}) + f_t)`` with ``F_t`` the sum of the
logits so far and ``sg`` no gradient (the ensemble's error, the previous ensemble's error,
and the new learner fitted to the residual the previous ensemble left), ``l(F_0)`` while it
has one learner; the two modalities' losses weighted ``ALPHA`` and ``1 - ALPHA``, as their
logits are in the prediction. ACA after the first epoch and every ``CHECK_EVERY`` epochs:
with ``rho`` the EHR's training score over the image's (the mean probability given to the
true labels, on the units that have an image, over the epoch), a learner goes to the image
when ``rho > 1 + MARGIN`` and to the EHR when ``rho < 1 - MARGIN``.

Simplified, and why: one shared EHR encoder (the LSTM state per read-out, which the
streaming gateway hands the model) and one CNN (its pooled features, projected); one
optimizer step per batch for both modalities (the paper steps each modality's classifier
in turn; their parameters are disjoint but for the shared output layer). Learners are
allocated up front, at most ``MAX_LEARNERS`` added per modality, and switched on by ACA
(the count is a buffer saved with the weights), so a checkpoint always loads into the same
architecture.

No image (per read-out ``batch.has_image``; AUG assumes complete modalities): the image
ensemble is given the learned "no image" vector in place of the projected image features;
the CNN is not involved.

Hyperparameters: classifier width = the EHR hidden size, ``ALPHA`` = 0.4 (the EHR's weight,
CareBench's merge weight), ``MARGIN`` = 0.01 around a balance ratio of 1, ``CHECK_EVERY`` =
3 epochs, ``MAX_LEARNERS`` = 3; dropout on the EHR state: the run's ``dropout``.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from scoring.baselines.batch import Batch
from scoring.baselines.encoders import pool
from scoring.baselines.models import _TwoEncoders, task_loss
from scoring.baselines.strategies.blocks import aligned_score

ALPHA = 0.4
MARGIN = 0.01
CHECK_EVERY = 3
MAX_LEARNERS = 3
EHR, IMAGE = 0, 1


class AUG(_TwoEncoders):
    """A boosting ensemble per modality sharing one output layer; the prediction mixes the
    two ensembles' logits ``ALPHA : 1 - ALPHA``."""

    learners: torch.Tensor  # (2,) learners switched on per modality (a buffer)

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        h = self.ehr.hidden
        self.base = nn.ModuleList(nn.Linear(h, h) for _ in (EHR, IMAGE))
        groups = [[nn.Linear(h, h) for _ in range(MAX_LEARNERS)] for _ in (EHR, IMAGE)]
        for group in groups:
            for layer in group:
                nn.init.xavier_normal_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.boost = nn.ModuleList(nn.ModuleList(group) for group in groups)
        self.out = nn.Linear(h, self.out_dim)
        # Learners switched on per modality (EHR, image) by adaptive classifier assignment.
        self.register_buffer("learners", torch.zeros(2, dtype=torch.long))
        self._scores = [0.0, 0.0]
        self._score_weight = 0.0
        self._step: tuple[float, float, float] | None = None
        self._epoch = 0

    def representations(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """EHR state and projected image features (the no-image vector where missing)."""
        ehr = self.drop(self._ehr(self.ehr, batch))
        img = self._image_vectors(pool(self._maps(self.cxr, batch)), batch)
        return ehr, img

    def learner_logits(self, modality: int, rep: torch.Tensor) -> list[torch.Tensor]:
        """The logits of each active learner of a modality's ensemble, first to last."""
        # Each item of ``boost`` is a ModuleList (built above); torch types it as Module.
        boosters = cast(nn.ModuleList, self.boost[modality])
        layers = [self.base[modality], *boosters[: int(self.learners[modality])]]
        return [self.out(torch.relu(layer(rep))) for layer in layers]

    def forward(self, batch: Batch) -> torch.Tensor:
        ehr, img = self.representations(batch)
        f_ehr = torch.stack(self.learner_logits(EHR, ehr)).sum(dim=0)
        f_img = torch.stack(self.learner_logits(IMAGE, img)).sum(dim=0)
        return ALPHA * f_ehr + (1.0 - ALPHA) * f_img

    def boosting_loss(self, learners: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """Sustained boosting: the ensemble's error, the previous ensemble's error and the
        newest learner's fit to what the previous ensemble left."""
        total = torch.stack(learners).sum(dim=0)
        if len(learners) == 1:
            return task_loss(self.kind, total, y)
        prev = total - learners[-1]
        return (
            task_loss(self.kind, total, y)
            + task_loss(self.kind, prev, y)
            + task_loss(self.kind, prev.detach() + learners[-1], y)
        )

    def training_loss(self, batch: Batch) -> torch.Tensor:
        assert batch.y is not None
        ehr, img = self.representations(batch)
        by_ehr = self.learner_logits(EHR, ehr)
        by_img = self.learner_logits(IMAGE, img)
        has = batch.has_image
        self._step = None
        if bool(has.any()):  # ACA's scores, on the units with an image
            fe, fi = torch.stack(by_ehr).sum(dim=0), torch.stack(by_img).sum(dim=0)
            self._step = (
                aligned_score(self.kind, fe[has], batch.y[has]),
                aligned_score(self.kind, fi[has], batch.y[has]),
                float(has.sum()),
            )
        return ALPHA * self.boosting_loss(by_ehr, batch.y) + (1.0 - ALPHA) * self.boosting_loss(
            by_img, batch.y
        )

    def adjust_gradients(self, epoch: int) -> None:
        """Gathers the step's scores; at the first step of a new epoch, first adaptive
        classifier assignment on the epoch before (after the first epoch and every
        ``CHECK_EVERY`` epochs). The gradients are left as they are."""
        if epoch != self._epoch:
            done, self._epoch = self._epoch, epoch
            if done and (done == 1 or done % CHECK_EVERY == 0):
                self.assign_learner()
            self._scores, self._score_weight = [0.0, 0.0], 0.0
        if self._step is not None:
            s_ehr, s_img, n = self._step
            self._scores[EHR] += s_ehr * n
            self._scores[IMAGE] += s_img * n
            self._score_weight += n
            self._step = None

    def assign_learner(self) -> int | None:
        """Give the weaker modality (by the scores gathered since the last check) one more
        learner; returns which one got it, or None (balanced, no score, or no learner
        left)."""
        if self._score_weight == 0 or self._scores[IMAGE] == 0:
            return None
        rho = self._scores[EHR] / self._scores[IMAGE]
        weaker = IMAGE if rho > 1 + MARGIN else EHR if rho < 1 - MARGIN else None
        if weaker is None or int(self.learners[weaker]) >= MAX_LEARNERS:
            return None
        self.learners[weaker] += 1
        return weaker
