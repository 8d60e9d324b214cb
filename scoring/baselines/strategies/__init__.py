"""CareBench's fusion strategies that MedMod's eight models do not cover, one module each.

Every strategy is a :class:`~scoring.baselines.models.Baseline` built like MedMod's fused
models: it starts from the task's trained EHR and CXR encoders (``self.ehr``, an
:class:`~scoring.baselines.encoders.EHREncoder`, and ``self.cxr``, the CNN) and is fine-tuned
end to end. It reads the EHR only as the encoder's state at each read-out and the image only
as the CNN's feature maps, so the streaming gateway serves it as it serves the others (the
encoders' outputs are handed over in ``Batch.ehr_ro`` and ``Batch.maps``). Each has an
explicit path for a unit without an image, and says in its docstring which paper it follows
and what it simplifies.

``STRATEGIES`` maps a model name to ``module:Class``; this module does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scoring.baselines.models import Baseline

# Missing-modality strategies first, then those designed for complete modalities.
STRATEGIES: dict[str, str] = {
    "drfuse": "scoring.baselines.strategies.drfuse:DrFuse",
    "shaspec": "scoring.baselines.strategies.shaspec:ShaSpec",
    "m3care": "scoring.baselines.strategies.m3care:M3Care",
    "smil": "scoring.baselines.strategies.smil:SMIL",
    "umse": "scoring.baselines.strategies.umse:UMSE",
    "healnet": "scoring.baselines.strategies.healnet:HEALNet",
    "flexmoe": "scoring.baselines.strategies.flexmoe:FlexMoE",
    # Complete-modality strategies.
    "utde": "scoring.baselines.strategies.utde:UTDE",
    "aug": "scoring.baselines.strategies.aug:AUG",
    "inforeg": "scoring.baselines.strategies.inforeg:InfoReg",
}

# Of those, the ones built for missing modalities (the rest assume both are present and are
# given the learned "no image" input when one is not).
MISSING_MODALITY: frozenset[str] = frozenset(
    {"drfuse", "shaspec", "m3care", "smil", "umse", "healnet", "flexmoe"}
)


def strategy_class(name: str) -> type[Baseline]:
    """The model class of a strategy by name."""
    module, _, cls = STRATEGIES[name].partition(":")
    found: type[Baseline] = getattr(importlib.import_module(module), cls)
    return found


def build_strategy(name: str, **kw: Any) -> Baseline:
    """A fresh strategy model (``kind``, ``out_dim``, ``ehr_hidden``, ``dropout``,
    ``cxr_encoder``)."""
    return strategy_class(name)(**kw)
