"""Ranking from stored per-replicate values: paired differences, tiers, rank intervals."""

import numpy as np
import pytest

from scoring.ranking import RankInput, paired_difference, rank_entries


def _entries(values, *, noise=0.01, shared=0.03, seed=0, baselines=()):
    """Entries whose replicates share a common per-replicate shift (as entries scored on the
    same replicates do) plus a small entry-specific noise."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, shared, 1000)
    out = []
    for i, v in enumerate(values):
        reps = v + common + rng.normal(0, noise, 1000)
        out.append(
            RankInput(entry_id=f"e{i}", value=v, replicates=reps, is_baseline=i in baselines)
        )
    return out


def test_paired_difference_matches_direct_quantiles_and_p():
    """The CI is the percentile interval of a - b and p the two-sided bootstrap p-value."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.8, 0.02, 1000), rng.normal(0.79, 0.02, 1000)
    res = paired_difference(a, b)
    d = a - b
    assert res["diff_ci"] == pytest.approx(list(np.quantile(d, [0.025, 0.975])))
    assert res["p"] == pytest.approx(min(1, 2 * min(np.mean(d <= 0), np.mean(d >= 0))))


def test_paired_difference_leaves_out_degenerate_replicates():
    a = np.array([0.5, np.nan, 0.7, 0.6])
    b = np.array([0.4, 0.4, np.nan, 0.5])
    assert paired_difference(a, b)["replicates_used"] == 2


def test_clearly_separated_entries_get_separate_tiers():
    ranked = rank_entries(_entries([0.70, 0.80, 0.90]), greater_is_better=True)
    assert [r.entry_id for r in ranked] == ["e2", "e1", "e0"]
    assert [r.tier for r in ranked] == [1, 2, 3]
    assert [r.rank for r in ranked] == [1, 2, 3]
    assert ranked[0].vs_leader is None
    assert ranked[1].vs_leader["p"] < 0.05
    assert ranked[1].vs_leader["diff"] == pytest.approx(-0.1)


def test_entries_within_noise_share_the_leaders_rank():
    """An entry whose difference to the tier head has a CI covering 0 shares its rank."""
    ranked = rank_entries(_entries([0.800, 0.801, 0.70], noise=0.01), greater_is_better=True)
    assert [r.rank for r in ranked] == [1, 1, 3]
    assert [r.tier for r in ranked] == [1, 1, 2]
    assert ranked[0].rank_interval[0] == 1 and ranked[1].rank_interval[1] >= 2


def test_lower_is_better_metrics_rank_ascending():
    ranked = rank_entries(_entries([0.3, 0.1, 0.2]), greater_is_better=False)
    assert [r.entry_id for r in ranked] == ["e1", "e2", "e0"]


def test_task_gives_direction_and_best_baseline_comparison():
    entries = _entries([0.9, 0.8, 0.7], baselines=(1, 2))
    ranked = rank_entries(entries, task="in-hospital-mortality")
    top = ranked[0]
    assert top.vs_baseline["entry_id"] == "e1"
    assert top.vs_baseline["diff"] == pytest.approx(0.1)
    assert ranked[1].vs_baseline is None  # the best baseline itself
    assert ranked[2].vs_baseline["entry_id"] == "e1"


def test_rank_intervals_cover_the_position_and_holm_is_monotone():
    ranked = rank_entries(_entries([0.81, 0.80, 0.79, 0.5], noise=0.02), greater_is_better=True)
    for r in ranked:
        lo, hi = r.rank_interval
        assert lo <= r.position <= hi or r.position == 4
    ps = [r.vs_leader["p_holm"] for r in ranked[1:]]
    raw = [r.vs_leader["p"] for r in ranked[1:]]
    assert all(h >= p for h, p in zip(ps, raw, strict=True))


def test_entries_scored_on_different_replicates_are_refused():
    a = RankInput(entry_id="a", value=0.8, replicates=[0.8] * 10)
    b = RankInput(entry_id="b", value=0.7, replicates=[0.7] * 20)
    with pytest.raises(ValueError, match="different numbers of replicates"):
        rank_entries([a, b], greater_is_better=True)


def test_ranking_is_independent_of_input_order():
    entries = _entries([0.75, 0.8, 0.77, 0.6], seed=3)
    a = rank_entries(entries, greater_is_better=True)
    b = rank_entries(entries[::-1], greater_is_better=True)
    assert [(r.entry_id, r.rank, r.tier, r.rank_interval) for r in a] == [
        (r.entry_id, r.rank, r.tier, r.rank_interval) for r in b
    ]


def test_five_hundred_entries_rank_quickly_in_bounded_memory():
    """Rank intervals use a per-replicate sort, not an entries x entries x replicates cube."""
    ranked = rank_entries(
        _entries(list(np.linspace(0.6, 0.9, 500)), seed=5), greater_is_better=True
    )
    assert len(ranked) == 500 and ranked[0].entry_id == "e499"
