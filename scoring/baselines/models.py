"""The reference baselines: two unimodal models and six ways of fusing them.

Every model maps a :class:`~scoring.baselines.batch.Batch` to one row of logits per
read-out (``forward``) and to probabilities (``probabilities``: sigmoid for binary and
multi-label tasks, softmax over the ten buckets for length of stay). Each handles a missing
chest X-ray explicitly, per read-out (``batch.has_image``):

========  =============================================================================
ehr       2-layer LSTM, linear head on the state at the prediction time.
cxr       residual CNN, linear head on the pooled features; without an image the head
          sees a learned "no image" vector instead (trained on the units that have none),
          so it predicts what the training data says about units without an X-ray.
late      average of the ehr and cxr probabilities; the ehr probability alone when the
          unit has no image.
early     ehr and cxr encoders taken from the trained unimodal models and frozen;
          [EHR state, projected image features] into a linear head. No image: a learned
          vector replaces the projected image features.
joint     the early architecture trained end to end.
medfuse   an LSTM over the sequence [EHR state, projected image features]; the sequence
          has length 1 when there is no image (MedFuse).
daft      the image's last feature maps are scaled and shifted per channel by factors
          computed from [pooled maps, EHR state] (DAFT), then pooled; no image: learned vector.
mmtm      squeeze and excitation between the encoders (MMTM): at every row the causal
          mean of the first LSTM layer's states and the pooled maps of the image
          available then give two gates, one on the EHR states before the second LSTM
          layer, one on the image channels. No image: a learned squeeze vector and a learned
          image vector.
========  =============================================================================

>>> import torch
>>> from scoring.baselines.batch import Batch
>>> b = Batch(x=torch.zeros(2, 3, 76), images=torch.zeros(1, 1, 64, 64),
...           ro_seq=torch.tensor([0, 1]), ro_pos=torch.tensor([2, 1]),
...           ro_img=torch.tensor([0, -1]), step_img=torch.tensor([[0, 0, 0], [-1, -1, -1]]))
>>> m = build_model("medfuse", kind="binary", out_dim=1, ehr_hidden=8, cxr_encoder="small")
>>> m.probabilities(b).shape
torch.Size([2, 1])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from scoring.baselines import MODEL_NAMES, STRATEGY_MODELS
from scoring.baselines.batch import Batch
from scoring.baselines.encoders import EHREncoder, ResNet, build_cxr_encoder, pool

__all__ = ["MODEL_NAMES", "Baseline", "build_model"]

UNIMODAL: tuple[str, ...] = ("ehr", "cxr")
# Models built on the trained unimodal models: late fusion combines them, early fusion
# freezes their encoders, and these start from their encoders (as MedFuse does) and are
# fine-tuned end to end.
STARTS_FROM_UNIMODAL: tuple[str, ...] = ("joint", "medfuse", "daft", "mmtm", *STRATEGY_MODELS)


def _readout(states: torch.Tensor, batch: Batch) -> torch.Tensor:
    """States ``(B, T, H)`` at each read-out's row: ``(R, H)``."""
    return states[batch.ro_seq, batch.ro_pos]


def _lookup(table: torch.Tensor, idx: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` by index, with ``missing`` where the index is -1 (no image)."""
    full = torch.cat([table, missing.unsqueeze(0)], dim=0)
    return full[torch.where(idx >= 0, idx, table.shape[0])]


def task_loss(kind: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The task's loss: 10-class cross-entropy for length of stay, binary cross-entropy
    (per label) otherwise."""
    if kind == "los":
        return nn.functional.cross_entropy(logits, y.long())
    return nn.functional.binary_cross_entropy_with_logits(logits, y.float().view_as(logits))


class Baseline(nn.Module):
    """Common parts: task kind, output size, probability link and image encoding.

    Training calls :meth:`training_loss` on each batch, then, after the backward pass and
    before the gradient is clipped and applied, :meth:`adjust_gradients`. A strategy with
    auxiliary objectives overrides the first; one that modulates how fast each modality
    learns overrides the second. Prediction only ever calls ``forward``.
    """

    trainable = True
    uses_images = True
    uses_ehr = True

    def __init__(self, *, kind: str, out_dim: int) -> None:
        super().__init__()
        self.kind = kind
        self.out_dim = out_dim

    def probabilities(self, batch: Batch) -> torch.Tensor:
        logits = self(batch)
        return torch.softmax(logits, dim=1) if self.kind == "los" else torch.sigmoid(logits)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """The loss one training step minimises: the task loss of ``forward``."""
        assert batch.y is not None
        return task_loss(self.kind, self(batch), batch.y)

    def adjust_gradients(self, epoch: int) -> None:
        """Called after the backward pass of each step of ``epoch`` (1-based); no-op here."""

    @staticmethod
    def _ehr(encoder: EHREncoder, batch: Batch) -> torch.Tensor:
        """The EHR encoder's state per read-out ``(R, H)`` (the batch's own when it has one)."""
        if batch.ehr_ro is not None:
            return batch.ehr_ro
        return _readout(encoder(batch.x), batch)

    @staticmethod
    def _maps(cnn: ResNet, batch: Batch) -> torch.Tensor:
        """Feature maps of the batch's images, ``(K, C, h, w)``; an empty tensor when K = 0."""
        if batch.maps is not None:
            return batch.maps
        if batch.images.shape[0] == 0:
            return batch.images.new_zeros((0, cnn.out_channels, 1, 1))
        if cnn.training and batch.images.shape[0] == 1:
            # Batch norm needs two values per channel; small inputs end at 1 x 1 maps.
            return cnn(batch.images.expand(2, -1, -1, -1))[:1]
        return cnn(batch.images)


def ehr_of(model: nn.Module) -> EHREncoder:
    """A model's EHR encoder (``model.ehr``), checked: torch types a module's attribute as
    ``Tensor | Module``, and a model rebuilt from a checkpoint is known only as a module."""
    encoder = getattr(model, "ehr", None)
    if not isinstance(encoder, EHREncoder):
        raise TypeError(f"{type(model).__name__} holds no EHR encoder")
    return encoder


def cxr_of(model: nn.Module) -> ResNet:
    """A model's image encoder (``model.cxr``), checked as :func:`ehr_of` is."""
    encoder = getattr(model, "cxr", None)
    if not isinstance(encoder, ResNet):
        raise TypeError(f"{type(model).__name__} holds no image encoder")
    return encoder


class UniEHR(Baseline):
    uses_images = False

    def __init__(self, *, kind: str, out_dim: int, ehr_hidden: int, dropout: float) -> None:
        super().__init__(kind=kind, out_dim=out_dim)
        self.ehr = EHREncoder(hidden=ehr_hidden)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(ehr_hidden, out_dim)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.head(self.drop(self._ehr(self.ehr, batch)))


class UniCXR(Baseline):
    uses_ehr = False

    def __init__(self, *, kind: str, out_dim: int, cxr_encoder: str) -> None:
        super().__init__(kind=kind, out_dim=out_dim)
        self.cxr = build_cxr_encoder(cxr_encoder)
        self.no_image = nn.Parameter(torch.zeros(self.cxr.out_channels))
        self.head = nn.Linear(self.cxr.out_channels, out_dim)

    def forward(self, batch: Batch) -> torch.Tensor:
        pooled = pool(self._maps(self.cxr, batch))
        return self.head(_lookup(pooled, batch.ro_img, self.no_image))


class LateFusion(Baseline):
    """Average of the unimodal probabilities; nothing to train."""

    trainable = False

    def __init__(self, *, ehr_model: UniEHR, cxr_model: UniCXR) -> None:
        super().__init__(kind=ehr_model.kind, out_dim=ehr_model.out_dim)
        self.ehr_model = ehr_model
        self.cxr_model = cxr_model

    def forward(self, batch: Batch) -> torch.Tensor:
        """Logits of the averaged probabilities (log-probabilities for length of stay)."""
        p = self.probabilities(batch).clamp(1e-7, 1 - 1e-7)
        return torch.log(p) if self.kind == "los" else torch.logit(p)

    def probabilities(self, batch: Batch) -> torch.Tensor:
        p_ehr = self.ehr_model.probabilities(batch)
        p_cxr = self.cxr_model.probabilities(batch)
        has = batch.has_image.unsqueeze(1)
        return torch.where(has, 0.5 * (p_ehr + p_cxr), p_ehr)


class _TwoEncoders(Baseline):
    """EHR and CXR encoders, the EHR read-out dropout and the learned no-image vector."""

    def __init__(
        self, *, kind: str, out_dim: int, ehr_hidden: int, dropout: float, cxr_encoder: str
    ) -> None:
        super().__init__(kind=kind, out_dim=out_dim)
        self.ehr = EHREncoder(hidden=ehr_hidden)
        self.cxr = build_cxr_encoder(cxr_encoder)
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(self.cxr.out_channels, ehr_hidden)
        self.no_image = nn.Parameter(torch.zeros(ehr_hidden))

    def _image_vectors(self, pooled: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Projected image features per read-out (the no-image vector where missing)."""
        return _lookup(self.proj(pooled), batch.ro_img, self.no_image)


class ConcatFusion(_TwoEncoders):
    """[EHR state, projected image features] into a linear head (early and joint fusion).

    With ``frozen=True`` (early fusion) the encoders receive no gradient and stay in
    evaluation mode, so their batch-norm statistics and dropout do not change.
    """

    def __init__(self, *, frozen: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.frozen = frozen
        self.head = nn.Linear(2 * self.ehr.hidden, self.out_dim)
        if frozen:
            for enc in (self.ehr, self.cxr):
                enc.requires_grad_(False)

    def train(self, mode: bool = True) -> ConcatFusion:
        super().train(mode)
        if self.frozen:
            self.ehr.eval()
            self.cxr.eval()
        return self

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder outputs per read-out: EHR state ``(R, h)`` and pooled image features
        ``(R, C)`` (zeros where the read-out has no image)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            ehr = self._ehr(self.ehr, batch)
            pooled = pool(self._maps(self.cxr, batch))
            zero = pooled.new_zeros(pooled.shape[1])
            return ehr, _lookup(pooled, batch.ro_img, zero)

    def fuse(self, ehr: torch.Tensor, pooled: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
        """Logits from encoder outputs (what early fusion trains on cached features)."""
        img = torch.where(has.unsqueeze(1), self.proj(pooled), self.no_image.unsqueeze(0))
        return self.head(torch.cat([self.drop(ehr), img], dim=1))

    def forward(self, batch: Batch) -> torch.Tensor:
        ehr, pooled = self.encode(batch)
        return self.fuse(ehr, pooled, batch.has_image)


class MedFuse(_TwoEncoders):
    """An LSTM over [EHR state, image features]; length 1 without an image."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        h = self.ehr.hidden
        self.fuse = nn.LSTM(h, 2 * h, batch_first=True)
        self.head = nn.Linear(2 * h, self.out_dim)

    def forward(self, batch: Batch) -> torch.Tensor:
        ehr = self.drop(self._ehr(self.ehr, batch))
        img = self._image_vectors(pool(self._maps(self.cxr, batch)), batch)
        out = self.fuse(torch.stack([ehr, img], dim=1))[0]  # (R, 2, 2h)
        # The LSTM is causal: its output after step 0 is that of the length-1 sequence.
        fused = torch.where(batch.has_image.unsqueeze(1), out[:, 1], out[:, 0])
        return self.head(fused)


class DAFT(_TwoEncoders):
    """The EHR state scales and shifts the image's last feature maps before pooling."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        c, h = self.cxr.out_channels, self.ehr.hidden
        bottleneck = max(16, (c + h) // 7)
        self.film = nn.Sequential(
            nn.Linear(c + h, bottleneck), nn.ReLU(inplace=True), nn.Linear(bottleneck, 2 * c)
        )
        # Start as the identity transform: scale 1, shift 0.
        last = self.film[2]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.head = nn.Linear(2 * h, self.out_dim)

    def forward(self, batch: Batch) -> torch.Tensor:
        ehr = self.drop(self._ehr(self.ehr, batch))
        maps = self._maps(self.cxr, batch)
        has = batch.has_image
        img = self.no_image.unsqueeze(0).expand(batch.n_readouts, -1)
        if bool(has.any()):
            idx = batch.ro_img[has]
            m = maps[idx]
            scale, shift = self.film(torch.cat([pool(m), ehr[has]], dim=1)).chunk(2, dim=1)
            m = torch.relu((1.0 + scale)[:, :, None, None] * m + shift[:, :, None, None])
            img = img.index_put((has.nonzero(as_tuple=True)[0],), self.proj(pool(m)))
        return self.head(torch.cat([ehr, img], dim=1))


class MMTM(_TwoEncoders):
    """Squeeze and excitation between the EHR LSTM layers and the image channels."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        c, h = self.cxr.out_channels, self.ehr.hidden
        z = (c + h) // 2  # MMTM's 2 * dim / ratio with ratio 4
        self.squeeze = nn.Linear(c + h, z)
        self.gate_ehr = nn.Linear(z, h)
        self.gate_img = nn.Linear(z, c)
        self.no_image_squeeze = nn.Parameter(torch.zeros(c))
        self.head = nn.Linear(2 * h, self.out_dim)

    @property
    def squeeze_size(self) -> int:
        return self.squeeze.out_features

    def mix(
        self, h1: torch.Tensor, ehr_sq: torch.Tensor, img_sq: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row: the squeeze vector ``z`` and the gated first-layer states that feed the
        second LSTM layer."""
        z = torch.relu(self.squeeze(torch.cat([ehr_sq, img_sq], dim=-1)))
        return z, h1 * 2.0 * torch.sigmoid(self.gate_ehr(z))

    def forward(self, batch: Batch) -> torch.Tensor:
        pooled = pool(self._maps(self.cxr, batch))  # (K, c)
        if batch.ehr_ro is not None:
            h2_ro, z_ro = batch.ehr_ro.split([self.ehr.hidden, self.squeeze_size], dim=1)
            return self._head(h2_ro, z_ro, pooled, batch)
        h1 = self.ehr.layer1(batch.x)  # (B, T, h)
        steps = torch.arange(1, h1.shape[1] + 1, dtype=h1.dtype).view(1, -1, 1)
        ehr_sq = h1.cumsum(dim=1) / steps  # causal mean of the states so far
        img_sq = _lookup(pooled, batch.step_img.reshape(-1), self.no_image_squeeze)
        z, gated = self.mix(h1, ehr_sq, img_sq.view(*batch.step_img.shape, -1))  # (B, T, z)
        h2 = self.ehr.layer2(gated)
        return self._head(_readout(h2, batch), _readout(z, batch), pooled, batch)

    def _head(
        self, h2_ro: torch.Tensor, z_ro: torch.Tensor, pooled: torch.Tensor, batch: Batch
    ) -> torch.Tensor:
        ehr = self.drop(h2_ro)
        gate = 2.0 * torch.sigmoid(self.gate_img(z_ro))  # (R, c)
        img_table = torch.cat([pooled, pooled.new_zeros((1, pooled.shape[1]))], dim=0)
        idx = torch.where(batch.has_image, batch.ro_img, pooled.shape[0])
        img = self.proj(gate * img_table[idx])
        img = torch.where(batch.has_image.unsqueeze(1), img, self.no_image.unsqueeze(0))
        return self.head(torch.cat([ehr, img], dim=1))


def build_model(
    name: str,
    *,
    kind: str,
    out_dim: int,
    ehr_hidden: int = 256,
    dropout: float = 0.3,
    cxr_encoder: str = "small",
    unimodal: dict[str, Baseline] | None = None,
) -> Baseline:
    """Construct a baseline by name.

    ``unimodal`` holds the trained ``ehr`` and ``cxr`` models: late fusion wraps them; early
    fusion copies and freezes their encoders; joint, medfuse, daft, mmtm and CareBench's
    strategies (:mod:`scoring.baselines.strategies`) start from their encoders. Without it (e.g. before loading a checkpoint) every part starts fresh.
    """
    common: dict[str, Any] = {"kind": kind, "out_dim": out_dim}
    two = {**common, "ehr_hidden": ehr_hidden, "dropout": dropout, "cxr_encoder": cxr_encoder}
    model: Baseline
    if name == "ehr":
        return UniEHR(**common, ehr_hidden=ehr_hidden, dropout=dropout)
    if name == "cxr":
        return UniCXR(**common, cxr_encoder=cxr_encoder)
    if name == "late":
        if unimodal is None:
            ehr_m = UniEHR(**common, ehr_hidden=ehr_hidden, dropout=dropout)
            cxr_m = UniCXR(**common, cxr_encoder=cxr_encoder)
        else:
            trained_ehr, trained_cxr = unimodal["ehr"], unimodal["cxr"]
            if not (isinstance(trained_ehr, UniEHR) and isinstance(trained_cxr, UniCXR)):
                raise TypeError("late fusion averages a trained EHR model and a CXR model")
            ehr_m, cxr_m = trained_ehr, trained_cxr
        return LateFusion(ehr_model=ehr_m, cxr_model=cxr_m)
    if name == "early":
        model = ConcatFusion(frozen=True, **two)
    elif name == "joint":
        model = ConcatFusion(**two)
    elif name == "medfuse":
        model = MedFuse(**two)
    elif name == "daft":
        model = DAFT(**two)
    elif name == "mmtm":
        model = MMTM(**two)
    elif name in STRATEGY_MODELS:
        from scoring.baselines.strategies import build_strategy

        model = build_strategy(name, **two)
    else:
        raise ValueError(f"unknown model {name!r}; the models are {', '.join(MODEL_NAMES)}")
    if unimodal is not None:
        ehr_of(model).load_state_dict(ehr_of(unimodal["ehr"]).state_dict())
        cxr_of(model).load_state_dict(cxr_of(unimodal["cxr"]).state_dict())
    return model
