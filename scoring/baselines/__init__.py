"""Reference fusion baselines (torch): the only part of the project that imports torch.

Two unimodal models (EHR LSTM, chest X-ray CNN) and six fusion models (late, early, joint,
MedFuse, DAFT, MMTM) trained on a benchmark's public train and validation splits; each run
writes checkpoints, a training log, a run manifest and one public prediction file per model
and task, covering every robustness scenario. See ``docs/baselines.md``.

Nothing in ``scoring`` or ``benchmark_data`` imports this package; importing it does not load
torch (the submodules do).
"""

MODEL_NAMES: tuple[str, ...] = ("ehr", "cxr", "late", "early", "joint", "medfuse", "daft", "mmtm")

__all__ = ["MODEL_NAMES"]
