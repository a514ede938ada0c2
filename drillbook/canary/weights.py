"""Traffic shifting: the canary's share of the backend, set through HAProxy's runtime API.

A share of w % means the canary servers' weights are w % of the backend's total
weight, so with round-robin or leastconn they receive w % of new requests. The
baseline keeps its configured weights while it can (its servers go on serving as
before) and the canary's weight is derived from them; only when the canary would
need more than HAProxy's maximum weight (256) is the baseline scaled down.

A share of 100 % gives the canary the maximum weight and leaves each baseline
server at weight 1 (99.2 % with two baseline servers), not 0: HAProxy skips a
DOWN server but never uses one at weight 0, so a canary that falls over while it
carries everything would otherwise take the whole service down with it until
the rollback restored the weights. Weights are integers, so the share set is the
nearest one the integers allow; :meth:`Weights.set_share` returns it.

**A control at the canary's weight.** Latency depends on a server's load: at a 5 %
step the canary takes a ninth of a baseline server's requests, and on a busy
machine its answers are faster for that alone (measured on the lab at load 15: the
baseline's server time was 50 ms of queueing the canary did not have, enough to
hide a +60 ms release). Spinnaker's Kayenta compares the canary with a *baseline of
the canary's size*, deployed next to it, not with the fleet. :meth:`Weights.plan_control`
does the same with the servers at hand: one baseline server per canary server (the
*control*) gets the canary's weight, the others carry the rest, so canary and control
answer the same number of requests per second in the same seconds. It applies where
the others still carry at least a control's load (the lab: the 5 % and 25 % steps).

"Restore" always means the weights in HAProxy's configuration (``get weight``
answers "current (initial)"), not whatever a crashed run left behind.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from drillbook.core.errors import ConfigError
from drillbook.core.haproxy import HAProxy

MAX_WEIGHT = 256


@dataclass(frozen=True)
class ServerWeight:
    server: str
    current: int
    initial: int


def read_weight(haproxy: HAProxy, backend: str, server: str) -> ServerWeight:
    """``get weight`` answers "current (initial N)" (HAProxy 2.x) or "current (N)"."""
    answer = haproxy.command(f"get weight {backend}/{server}").strip()
    numbers = re.findall(r"\d+", answer)
    if not numbers or not answer[:1].isdigit():
        raise ConfigError(f"HAProxy: unexpected answer to get weight {backend}/{server}: {answer!r}")
    current = int(numbers[0])
    return ServerWeight(server, current, int(numbers[1]) if len(numbers) > 1 else current)


def split(share: float, canary: Sequence[int], baseline: Sequence[int]) -> tuple[list[int], list[int]]:
    """Weights for canary and baseline servers giving the canary ``share`` (0..1) of the total.

    ``canary`` and ``baseline`` are the servers' configured weights; a canary server
    configured at 0 counts as 1 (it must be able to take traffic).
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share must be within 0..1, got {share}")
    if not canary:
        raise ValueError("no canary servers")
    if share == 0:
        return [0] * len(canary), list(baseline)
    base_total = sum(baseline)
    c_shape = [max(1, w) for w in canary]
    if base_total == 0:
        return c_shape, [0] * len(baseline)
    if share == 1:
        largest = max(c_shape)
        return [max(1, round(MAX_WEIGHT * w / largest)) for w in c_shape], [1 if w else 0 for w in baseline]
    c_total = sum(c_shape)
    # canary total T with T / (T + base_total) = share
    wanted = share * base_total / (1 - share)
    scale_c = wanted / c_total
    scale_b = 1.0
    top = max(c_shape) * scale_c
    if top > MAX_WEIGHT:  # the canary cannot grow further: shrink the baseline instead
        scale_b = MAX_WEIGHT / top
        scale_c *= scale_b
    c_weights = [min(MAX_WEIGHT, max(1, round(w * scale_c))) for w in c_shape]
    b_weights = [max(1, round(w * scale_b)) if w else 0 for w in baseline]
    return c_weights, b_weights


def split_control(
    share: float, canary: Sequence[int], control: Sequence[int], rest: Sequence[int]
) -> tuple[list[int], list[int], list[int]] | None:
    """(canary, control, rest) weights: control server i at canary server i's weight, the canary at
    ``share`` of the total. None when the rest would carry less per server than a canary server.
    """
    if not canary or len(control) != len(canary) or not rest or not 0 < share < 1:
        return None
    c_shape = [max(1, w) for w in canary]
    r_shape = [max(1, w) for w in rest]
    c_total = sum(c_shape)
    rest_total = c_total / share - 2 * c_total
    scale_r = rest_total / sum(r_shape)
    top = max(max(c_shape), max(r_shape) * scale_r)
    scale = min(1.0, MAX_WEIGHT / top)
    c_w = [max(1, round(w * scale)) for w in c_shape]
    r_w = [max(1, round(w * scale_r * scale)) for w in r_shape]
    if min(r_w) < max(c_w):
        return None
    return c_w, list(c_w), r_w


def load_ratio(canary: Sequence[int], baseline: Sequence[int]) -> float:
    """Requests a canary server takes per request a baseline server takes (inf: baseline at 0)."""
    c = sum(canary) / len(canary) if canary else 0.0
    b = sum(baseline) / len(baseline) if baseline else 0.0
    return c / b if b else float("inf")


def achieved(canary: Sequence[int], baseline: Sequence[int]) -> float:
    total = sum(canary) + sum(baseline)
    return sum(canary) / total if total else 0.0


class Weights:
    """The canary and baseline servers of one backend, and their weights."""

    def __init__(
        self, haproxy: HAProxy, backend: str, canary: Sequence[str], baseline: Sequence[str]
    ) -> None:
        if not canary:
            raise ConfigError("no canary servers to shift traffic to")
        overlap = set(canary) & set(baseline)
        if overlap:
            raise ConfigError(f"servers both canary and baseline: {sorted(overlap)}")
        self.haproxy = haproxy
        self.backend = backend
        self.canary = list(canary)
        self.baseline = list(baseline)
        self._initial: dict[str, int] | None = None
        #: Baseline servers that can be the canary's control (one per canary server), in order.
        self.control = self.baseline[: len(self.canary)] if len(self.baseline) > len(self.canary) else []

    def read(self, server: str) -> ServerWeight:
        return read_weight(self.haproxy, self.backend, server)

    def all(self) -> list[ServerWeight]:
        return [self.read(s) for s in [*self.canary, *self.baseline]]

    @property
    def initial(self) -> dict[str, int]:
        """Configured weights, read once (they do not change at run time)."""
        if self._initial is None:
            self._initial = {w.server: w.initial for w in self.all()}
        return self._initial

    def drifted(self) -> list[ServerWeight]:
        """Servers whose weight is not the configured one (a run interrupted without its restore)."""
        return [w for w in self.all() if w.current != w.initial]

    def plan(self, percent: float) -> tuple[list[int], list[int]]:
        """The (canary, baseline) weights that give the canary ``percent`` % of the backend."""
        init = self.initial
        return split(percent / 100, [init[s] for s in self.canary], [init[s] for s in self.baseline])

    def load_ratio(self, percent: float, control: bool = False) -> float:
        """How many requests a canary server takes per request of a baseline server at ``percent``."""
        planned = self.plan_control(percent) if control else None
        if planned is not None:
            return load_ratio([planned[s] for s in self.canary], [planned[s] for s in self.baseline])
        c, b = self.plan(percent)
        return load_ratio(c, b)

    def plan_control(self, percent: float) -> dict[str, int] | None:
        """Weights per server with a control at the canary's weight, or None where it does not fit."""
        if not self.control:
            return None
        init = self.initial
        rest = [s for s in self.baseline if s not in self.control]
        weights = split_control(
            percent / 100,
            [init[s] for s in self.canary],
            [init[s] for s in self.control],
            [init[s] for s in rest],
        )
        if weights is None:
            return None
        c, k, r = weights
        return dict(zip([*self.canary, *self.control, *rest], [*c, *k, *r], strict=True))

    def set_share(self, percent: float, control: bool = False) -> float:
        """Give the canary ``percent`` % of the backend; return the share actually set (percent).

        ``control``: with a control at the canary's weight where :meth:`plan_control` fits.
        """
        planned = self.plan_control(percent) if control else None
        if planned is None:
            c, b = self.plan(percent)
            planned = dict(zip([*self.canary, *self.baseline], [*c, *b], strict=True))
        for server in [*self.baseline, *self.canary]:  # baseline first: never a moment with less of it
            self.haproxy.set_weight(self.backend, server, planned[server])
        total = sum(planned.values())
        return round(100 * sum(planned[s] for s in self.canary) / total, 2) if total else 0.0

    def canary_off(self) -> None:
        """Canary weight 0 at once, the baseline at its configured weights: the first move of a rollback.

        Baseline first: at a 100 % step the baseline is at weight 1, and a canary set to 0
        before it is restored would leave the backend with (almost) nothing to route to.
        """
        init = self.initial
        for server in self.baseline:
            self.haproxy.set_weight(self.backend, server, init[server])
        for server in self.canary:
            self.haproxy.set_weight(self.backend, server, 0)

    def restore(self) -> None:
        """Back to the configured weights: baseline first, then canary (no moment with more canary)."""
        init = self.initial
        for server in [*self.baseline, *self.canary]:
            self.haproxy.set_weight(self.backend, server, init[server])

    def shares(self) -> dict[str, float]:
        """Each server's current share of the backend, in percent."""
        weights = self.all()
        total = sum(w.current for w in weights)
        return {w.server: round(100 * w.current / total, 2) if total else 0.0 for w in weights}
