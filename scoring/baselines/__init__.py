"""Reference fusion baselines (torch): the only part of the project that imports torch.

Two unimodal models (EHR LSTM, chest X-ray CNN) and six fusion models (late, early, joint,
MedFuse, DAFT, MMTM) trained on a benchmark's public train and validation splits; each run
writes checkpoints, a training log, a run manifest and one public prediction file per model
and task, covering every robustness scenario. See ``docs/baselines.md``.

Nothing in ``scoring`` or ``benchmark_data`` imports this package; importing it does not load
torch (the submodules do).
"""

from scoring.baselines.strategies import STRATEGIES

MEDMOD_MODELS: tuple[str, ...] = (
    "ehr",
    "cxr",
    "late",
    "early",
    "joint",
    "medfuse",
    "daft",
    "mmtm",
)
# CareBench's strategies that MedMod does not have (scoring.baselines.strategies).
STRATEGY_MODELS: tuple[str, ...] = tuple(STRATEGIES)
MODEL_NAMES: tuple[str, ...] = MEDMOD_MODELS + STRATEGY_MODELS

__all__ = ["MEDMOD_MODELS", "MODEL_NAMES", "STRATEGY_MODELS"]
