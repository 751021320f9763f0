"""How many pods each revision gets: the replica split of a basic canary, and the pace.

There is no traffic router: the Service selects the pods of every revision, so traffic
follows ready pod counts.  :func:`target` picks, for a weight, the stable and canary pod
counts whose ratio comes closest to it without going over ``replicas + max_surge`` pods
in total; for weights 1-99 both sides keep at least one pod, except with one replica and
``max_surge`` 0 (where the canary waits at 0 until the weight reaches 100).
:func:`advance` moves from the current counts towards the target without ever exceeding
the surge budget or dropping below the ready capacity the service had.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    """Pods wanted for the stable and the canary revision."""

    stable: int
    canary: int

    @property
    def total(self) -> int:
        return self.stable + self.canary


def target(replicas: int, weight: int, max_surge: int) -> Split:
    """The split for ``weight`` percent of ``replicas`` pods, with ``max_surge`` extra pods."""
    if replicas <= 0:
        return Split(0, 0)
    if weight <= 0:
        return Split(replicas, 0)
    if weight >= 100:
        return Split(0, replicas)
    best: tuple[float, int, int, Split] | None = None
    for stable in range(1, replicas + 1):
        for canary in range(1, replicas + 1):
            total = stable + canary
            if total < replicas or total > replicas + max_surge:
                continue
            error = abs(canary / total - weight / 100)
            # Closest ratio first, then fewer pods, then more stable pods.
            key = (round(error, 9), total, -stable, Split(stable, canary))
            if best is None or key[:3] < best[:3]:
                best = key
    if best is None:  # one replica and no surge: the canary cannot have a pod yet
        return Split(replicas, 0)
    return best[3]


def advance(current: Split, ready_canary: int, want: Split, replicas: int, max_surge: int) -> Split:
    """The next counts on the way from ``current`` to ``want``.

    * Scaling up is immediate for the stable side (an abort, the autoscaler) and bounded by
      the surge budget for the canary: ``stable + canary <= replicas + max_surge`` holds for
      the counts before and after this call.
    * Scaling the stable side down waits for canary pods to be ready, keeping at least
      ``replicas`` ready pods (``replicas - 1`` with ``max_surge`` 0, which could not move
      otherwise).  Scaling the canary down is immediate.
    * The budget counts the Deployments' replicas, as Kubernetes' Deployment controller
      counts its ReplicaSets' (a pod still terminating is not counted): the stable side
      scaled down makes room for the canary in the same call. The reconcile writes a
      scale-down before a scale-up
      (:func:`payment_operator.reconcile.scale_downs_first`), so the budget holds between
      the two writes too.
    """
    unavailable = 0 if max_surge > 0 else 1
    if want.stable < current.stable:
        floor = replicas - unavailable - min(ready_canary, want.canary)
        stable = max(want.stable, min(current.stable, floor))
    else:
        stable = want.stable
    if want.canary > current.canary:
        room = replicas + max_surge - stable
        canary = max(current.canary, min(want.canary, room))
    else:
        canary = want.canary
    return Split(stable, canary)


def actual_weight(ready_stable: int, ready_canary: int) -> int:
    """Percentage of ready pods that run the canary (what traffic really sees)."""
    total = ready_stable + ready_canary
    return 0 if total == 0 else round(100 * ready_canary / total)
