"""Exact small-sample tests, written with ``math`` alone (no SciPy dependency).

The canary judge asks one question over and over: "does the canary show a larger
share of bad requests (errors, or requests slower than a bound) than the baseline
over the same window?" With counts as small as a 5 % canary step produces (a few
dozen requests, a handful of errors) normal approximations (z-test, chi-square)
are wrong exactly where it matters, so the comparison is Fisher's exact test,
one-sided: conditional on the total number of bad requests in both groups, how
likely is it that the canary got at least as many of them as it did if bad
requests fell on canary and baseline alike? The tail of the hypergeometric
distribution is summed in log space with ``math.lgamma``, so counts in the
hundreds of thousands neither overflow nor lose precision.
"""

from __future__ import annotations

import math


def log_comb(n: int, k: int) -> float:
    """log(C(n, k)); -inf when k is outside 0..n."""
    if k < 0 or k > n:
        return -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(bad_a: int, total_a: int, bad_b: int, total_b: int) -> float:
    """One-sided Fisher exact p-value for "group a has a larger bad share than group b".

    The p-value is P(X >= bad_a) where X is hypergeometric: ``total_a`` draws from
    ``total_a + total_b`` requests of which ``bad_a + bad_b`` are bad. 1.0 when
    there is nothing to compare (no bad requests at all, or an empty group).
    """
    for name, value in (("bad_a", bad_a), ("total_a", total_a), ("bad_b", bad_b), ("total_b", total_b)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if bad_a > total_a or bad_b > total_b:
        raise ValueError("bad counts cannot exceed totals")
    n = total_a + total_b
    k = bad_a + bad_b
    if k == 0 or total_a == 0 or total_b == 0:
        return 1.0
    denominator = log_comb(n, total_a)
    lo = max(bad_a, total_a - (n - k))
    hi = min(k, total_a)
    logs = [log_comb(k, x) + log_comb(n - k, total_a - x) - denominator for x in range(lo, hi + 1)]
    if not logs:
        return 0.0
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))
