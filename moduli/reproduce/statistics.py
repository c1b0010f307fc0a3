"""Summary statistics of one table cell and Welch's t-test between two cells.

Standard deviations are sample standard deviations (``ddof=1``), NaN for fewer than two values.
The test is Welch's two-sided t-test (``scipy.stats.ttest_ind(a, b, equal_var=False)``); with
fewer than two values on either side, or no variance at all, it gives NaN, not an error.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

__all__ = ["DDOF", "ALPHA", "TEST_NAME", "mean_std", "welch_test"]

DDOF = 1  # delta degrees of freedom of the reported standard deviations (sample std)
ALPHA = 0.05  # significance level of the marks in the tables
TEST_NAME = "Welch's two-sided t-test (unequal variances; scipy.stats.ttest_ind, equal_var=False)"


def _finite(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"values must be a flat sequence of numbers, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("values must be finite; exclude failed runs (NaN or infinite metrics) first")
    return arr


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation with ddof=1) of ``values``; NaN where undefined."""
    arr = _finite(values)
    mean = float(arr.mean()) if arr.size else math.nan
    std = float(arr.std(ddof=DDOF)) if arr.size > DDOF else math.nan
    return mean, std


def welch_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(t statistic, two-sided p-value) of Welch's t-test of ``a`` against ``b``; NaN if undefined."""
    x, y = _finite(a), _finite(b)
    if x.size < 2 or y.size < 2:
        return math.nan, math.nan
    from scipy import stats

    with warnings.catch_warnings():  # zero variance on both sides: scipy warns and returns NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(x, y, equal_var=False)
    return float(result.statistic), float(result.pvalue)
