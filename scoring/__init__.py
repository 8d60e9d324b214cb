"""The scoring engine: prediction-file validation, metrics with bootstrap CIs, fairness,
robustness, ranking and plots. Pure Python: no Django, no torch (torch lives in
``scoring.baselines`` only, which nothing here imports)."""

from scoring.errors import PredictionFileError, ScoringInputError
from scoring.ranking import RankedEntry, RankInput, paired_difference, rank_entries
from scoring.report import build_report, report_json, score_predictions
from scoring.truth import Truth, TruthError, truth_from_benchmark, truth_from_csv
from scoring.validation import Predictions, read_predictions
from scoring.version import SCORER_VERSION

__all__ = [
    "SCORER_VERSION",
    "PredictionFileError",
    "Predictions",
    "RankInput",
    "RankedEntry",
    "ScoringInputError",
    "Truth",
    "TruthError",
    "build_report",
    "paired_difference",
    "rank_entries",
    "read_predictions",
    "report_json",
    "score_predictions",
    "truth_from_benchmark",
    "truth_from_csv",
]
