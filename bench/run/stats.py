"""Statistics of a comparison: t intervals over seeds, a user-level bootstrap, paired tests with Holm.

Each seed has its own split and data, so the spread over seeds holds training noise and the
draw of test users alike; the bootstrap adds the test-set noise of the users each seed scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

LEVEL = 0.95
POWER = 0.8


def mean_ci(values: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and its t interval over seeds; the interval is NaN for one seed."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean()) if len(values) else float("nan")
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    sem = stats.sem(values)
    if sem == 0:
        return mean, mean, mean
    lo, hi = stats.t.interval(level, len(values) - 1, loc=mean, scale=sem)
    return mean, float(lo), float(hi)


@dataclass(frozen=True)
class Predictions:
    """One cell's test rows: ``label (N,)``, ``score (N,)``, ``group (N,)`` user codes."""

    label: np.ndarray
    score: np.ndarray
    group: np.ndarray


def bootstrap_ci(cells: list[Predictions], n_resamples: int = 1000, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean over seeds of test AUC, resampling each seed's users with
    replacement (all rows of a drawn user come along: a user-level, clustered bootstrap)."""
    rng = np.random.default_rng(seed)
    per_seed = []
    for cell in cells:
        _, user = np.unique(cell.group, return_inverse=True)
        n_users = int(user.max()) + 1 if len(user) else 0
        if n_users == 0 or len(np.unique(cell.label)) < 2:
            return float("nan"), float("nan")
        counts = rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=n_resamples)  # (R, users)
        per_seed.append(weighted_auc(cell.label, cell.score, counts[:, user]))
    values = np.mean(per_seed, axis=0)
    values = values[~np.isnan(values)]
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def weighted_auc(label: np.ndarray, score: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """ROC AUC of ``score`` for each row of ``weight (R, N)`` (ties count one half), all at once:
    ``roc_auc_score(label, score, sample_weight=weight[r])`` for every r (the tests hold it to that)."""
    _, level = np.unique(score, return_inverse=True)  # score levels, ascending
    pos, neg = label > 0.5, label <= 0.5
    n_levels = int(level.max()) + 1
    neg_at = np.zeros((weight.shape[0], n_levels))
    np.add.at(neg_at.T, level[neg], weight[:, neg].T)  # (R, levels): negative weight at each level
    below = np.cumsum(neg_at, axis=1) - neg_at
    credit = below[:, level[pos]] + 0.5 * neg_at[:, level[pos]]  # (R, positives)
    w_pos, w_neg = weight[:, pos], weight[:, neg]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w_pos * credit).sum(axis=1) / (w_pos.sum(axis=1) * w_neg.sum(axis=1))


@dataclass(frozen=True)
class Paired:
    """A paired comparison over seeds of ``a - b``."""

    n: int
    diff: float
    lo: float
    hi: float
    p: float
    detectable: float  # the smallest |difference| these seeds detect with POWER at p < 0.05
    verdict: str


def paired(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> Paired:
    """Paired t-test of ``a - b`` over seeds. All differences zero: "identical" (no test is run,
    and no p-value of 0 calls two equal models different); a constant non-zero difference: no test."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    if n and np.all(d == 0):
        return Paired(n, 0.0, 0.0, 0.0, float("nan"), float("nan"), "identical")
    if n < 2:
        return Paired(n, mean, float("nan"), float("nan"), float("nan"), float("nan"), "n/a (1 seed)")
    sd = float(d.std(ddof=1))
    if sd == 0:
        return Paired(n, mean, mean, mean, float("nan"), float("nan"), "n/a (zero variance)")
    _, lo, hi = mean_ci(d, level)
    p = float(stats.ttest_1samp(d, 0.0).pvalue)
    effect = TTestPower().solve_power(nobs=n, alpha=1 - level, power=POWER, alternative="two-sided")
    return Paired(n, mean, lo, hi, p, float(effect) * sd, "")


def holm(pvalues: list[float], alpha: float = 1 - LEVEL) -> list[float]:
    """Holm-adjusted p-values (NaN stays NaN and takes no part)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(len(p), np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=alpha, method="holm")[1]
    return out.tolist()


def verdict(result: Paired, p_adjusted: float, a: str, b: str, alpha: float = 1 - LEVEL) -> str:
    if result.verdict:
        return result.verdict
    if p_adjusted < alpha:
        return f"{a} better" if result.diff > 0 else f"{b} better"
    return "no difference detected"
