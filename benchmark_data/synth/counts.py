"""Exact unit counts: pick stay lengths, death times and image counts so that a split's
unit lists have exactly the sizes a scale asks for.

Times are whole minutes since the stay's ``intime``. A stay of ``m`` minutes has
``hourly_rows(m) = max(0, m // 60 - 4)`` hourly rows (``t = 5, 6, ...`` up to its length);
adding 60 minutes adds exactly one row, which is how the counts are met exactly.

>>> hourly_rows(np.array([200, 300, 2880, 2939])).tolist()
[0, 1, 44, 44]
"""

from __future__ import annotations

import numpy as np

LONG_STAY_MINUTES = 48 * 60
FIRST_ROW_HOUR = 5

ERR_INFEASIBLE = "cannot reach {what} = {target:,} (possible range {low:,} .. {high:,})"


def hourly_rows(minutes: np.ndarray) -> np.ndarray:
    """Number of hourly rows (whole hours ``t > 4`` up to the end) of spans in minutes."""
    return np.maximum(0, np.asarray(minutes, dtype=np.int64) // 60 - (FIRST_ROW_HOUR - 1))


def _sorted_uniform(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.random(n))


def split_quantiles(
    u: np.ndarray, *, n_top: int, cut: float, rng: np.random.Generator
) -> np.ndarray:
    """Redraw quantiles so that exactly ``n_top`` of them are at or above ``cut``.

    The ``n_top`` largest keep their order and get fresh uniform values in ``[cut, 1)``; the
    others in ``[0, cut)``. Ranks (and so the dependence on whatever made ``u``) are kept and
    the marginal distribution stays uniform in expectation.
    """
    n = len(u)
    if not 0 <= n_top <= n:
        raise ValueError(ERR_INFEASIBLE.format(what="long stays", target=n_top, low=0, high=n))
    order = np.argsort(-u, kind="stable")
    out = np.empty(n)
    out[order[:n_top]] = cut + (1 - cut) * _sorted_uniform(n_top, rng)[::-1]
    out[order[n_top:]] = cut * _sorted_uniform(n - n_top, rng)[::-1]
    # Guard the boundary against rounding: top values strictly at or above the cut.
    out[order[:n_top]] = np.maximum(out[order[:n_top]], cut)
    out[order[n_top:]] = np.minimum(out[order[n_top:]], np.nextafter(cut, 0))
    return out


def fit_row_total(
    minutes: np.ndarray, *, target: int, rng: np.random.Generator, floor: int = LONG_STAY_MINUTES
) -> np.ndarray:
    """Stretch or shrink the stays at or above ``floor`` minutes so that the hourly rows of
    all stays sum to exactly ``target``; no stay crosses ``floor``.

    The excess over ``floor`` is scaled by one common factor (found by bisection), then the
    few rows still missing are added one hour at a time to randomly chosen long stays.
    """
    m = np.asarray(minutes, dtype=np.int64).copy()
    long = m >= floor
    fixed = int(hourly_rows(m[~long]).sum())
    excess = (m[long] - floor).astype(np.float64)
    low = fixed + int(hourly_rows(np.full(long.sum(), floor)).sum())
    if target < low or (target > low and not long.any()):
        raise ValueError(ERR_INFEASIBLE.format(what="hourly rows", target=target, low=low, high=-1))

    def total(c: float) -> int:
        return fixed + int(hourly_rows(floor + np.floor(excess * c)).sum())

    lo, hi = 0.0, 1.0
    while total(hi) <= target:
        hi *= 2.0
        if hi > 1e6:
            break
    for _ in range(60):
        mid = (lo + hi) / 2
        if total(mid) <= target:
            lo = mid
        else:
            hi = mid
    m_long = floor + np.floor(excess * lo).astype(np.int64)
    missing = target - fixed - int(hourly_rows(m_long).sum())
    if missing:
        # Spread the remaining hours over distinct long stays (several rounds if needed).
        add = np.bincount(rng.choice(len(m_long), size=missing), minlength=len(m_long))
        m_long += 60 * add
    m[long] = m_long
    return m


def fit_losses(
    capacity: np.ndarray, *, target: int, mean: float, rng: np.random.Generator
) -> np.ndarray:
    """Whole hours ``k_i`` (``0 <= k_i <= capacity_i``) that sum to exactly ``target``.

    Used for deaths in the ICU: the patient dies ``k_i`` whole hours before the end of the
    stay's last hour, so the decompensation rows of the stay are ``k_i`` fewer than its
    length-of-stay rows. Starts from Poisson(``mean``) draws, then adds or removes single
    hours at random stays with room.
    """
    cap = np.asarray(capacity, dtype=np.int64)
    if target < 0 or target > int(cap.sum()):
        raise ValueError(
            ERR_INFEASIBLE.format(
                what="lost hourly rows", target=target, low=0, high=int(cap.sum())
            )
        )
    k = np.minimum(rng.poisson(mean, size=len(cap)), cap)
    while (diff := target - int(k.sum())) != 0:
        room = np.flatnonzero(k < cap) if diff > 0 else np.flatnonzero(k > 0)
        pick = rng.choice(room, size=min(abs(diff), len(room)), replace=False)
        k[pick] += 1 if diff > 0 else -1
    return k


def fit_image_counts(
    counts: np.ndarray, weights: np.ndarray, *, target: int, rng: np.random.Generator
) -> np.ndarray:
    """Adjust per-stay image counts (each at least 1) to sum to exactly ``target``.

    Extra images go to stays drawn with probability proportional to ``weights`` (e.g. the
    stay's length); surplus images are removed from stays that keep at least one.
    """
    n = np.asarray(counts, dtype=np.int64).copy()
    if target < len(n) or (len(n) == 0 and target):
        raise ValueError(
            ERR_INFEASIBLE.format(what="images", target=target, low=len(n), high=10**9)
        )
    diff = target - int(n.sum())
    if diff > 0:
        w = np.asarray(weights, dtype=np.float64)
        n += rng.multinomial(diff, w / w.sum())
    elif diff < 0:
        slots = np.repeat(np.arange(len(n)), n - 1)
        drop = rng.choice(slots, size=-diff, replace=False)
        n -= np.bincount(drop, minlength=len(n))
    return n


def choose_top_k(
    logits: np.ndarray, *, k: int, eligible: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Boolean mask of exactly ``k`` eligible units, drawn without replacement with
    probability proportional to ``exp(logits)`` (the Gumbel top-k trick)."""
    eligible = np.asarray(eligible, dtype=bool)
    if not 0 <= k <= int(eligible.sum()):
        raise ValueError(
            ERR_INFEASIBLE.format(what="chosen units", target=k, low=0, high=int(eligible.sum()))
        )
    keys = np.where(eligible, logits + rng.gumbel(size=len(logits)), -np.inf)
    out = np.zeros(len(logits), dtype=bool)
    if k:
        out[np.argsort(-keys, kind="stable")[:k]] = True
    return out
