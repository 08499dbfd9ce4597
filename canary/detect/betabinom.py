"""Beta-binomial tail probabilities turned into normal scores, vectorised over days.

Counts are judged by their exact predictive distribution (no normal approximation: at a 99 %
pass rate the binomial is far from symmetric), then mapped to a standard normal score so that
one CUSUM threshold fits every pass rate, trial count and overdispersion."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

Z_LIMIT = 8.0  # |z| beyond this carries no extra meaning and only stretches the CUSUM
_INV = NormalDist().inv_cdf
_P_MIN = 1e-300
_P_MAX = math.nextafter(1.0, 0.0)


def _log_pmf0(n: int, a: float, b: float) -> float:
    """log P(X = 0) for X ~ BetaBinomial(n, a, b): Gamma(n+b) Gamma(a+b) / (Gamma(n+a+b) Gamma(b))."""
    return math.lgamma(n + b) + math.lgamma(a + b) - math.lgamma(b) - math.lgamma(n + a + b)


def mid_p(x: np.ndarray, n: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(X < x) + P(X = x) / 2 for X ~ BetaBinomial(n, a, b), row by row.

    The mid-p keeps a discrete count's score centred (mean ~0.5 in control) without the
    randomisation a uniform PIT would need, so the result stays a pure function. Rows are
    independent of each other and of the padding, so scoring a day gives the same bits
    whether it is scored alone or within a whole stream."""
    rows = len(x)
    if rows == 0:
        return np.zeros(0)
    n_max = int(n.max())
    j = np.arange(n_max, dtype=float)[None, :]  # step j -> j+1
    nn, aa, bb = n.astype(float)[:, None], a[:, None], b[:, None]
    inside = j < nn
    top = np.where(inside, nn - j, 1.0)
    bottom = np.where(inside, bb + nn - j - 1.0, 1.0)
    ratio = np.where(inside, np.log(top) - np.log(j + 1.0) + np.log(aa + j) - np.log(bottom), 0.0)
    lp0 = np.array([_log_pmf0(int(k), float(p), float(q)) for k, p, q in zip(n, a, b, strict=True)])
    log_pmf = np.cumsum(np.concatenate([lp0[:, None], ratio], axis=1), axis=1)
    pmf = np.exp(log_pmf)
    pmf[np.arange(n_max + 1)[None, :] > nn] = 0.0
    cdf = np.cumsum(pmf, axis=1)
    idx = np.arange(rows)
    return cdf[idx, x] - 0.5 * pmf[idx, x]


def normal_scores(p: np.ndarray) -> np.ndarray:
    """Standard normal quantiles of p, clipped to +-Z_LIMIT."""
    z = [_INV(min(max(float(v), _P_MIN), _P_MAX)) for v in p]
    return np.clip(np.array(z, dtype=float), -Z_LIMIT, Z_LIMIT)


def predictive(mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Beta(a, b) with the given mean and variance (the variance is capped so a, b > 0)."""
    spread = mean * (1.0 - mean)
    conc = np.maximum(spread / np.maximum(var, 1e-300) - 1.0, 0.5)
    return mean * conc, (1.0 - mean) * conc
