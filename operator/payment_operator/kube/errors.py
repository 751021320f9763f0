"""API failures: :class:`KubeError`, and how each one is named in conditions and Events.

The client raises :class:`KubeError` for every failed call (status 0 when the API server
cannot be reached); :func:`failure_of` turns it into the ``conditions.Failure`` the status
and Events report, and says whether retrying the same request can help.
"""

from __future__ import annotations

from dataclasses import dataclass

from payment_operator import conditions


@dataclass
class KubeError(Exception):
    """An API call that failed: HTTP status (0 when unreachable), reason and message."""

    status: int
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.message}"

    @property
    def retryable(self) -> bool:
        return self.status in (0, 409, 429) or self.status >= 500


# Failures that will not go away by retrying the same request.  They still get retried with
# back-off (a quota is raised, RBAC is fixed), but the status says Stalled meanwhile.
_NON_RETRYABLE = {400: "InvalidChild", 403: "Forbidden", 404: "NotFound", 422: "InvalidChild"}


def failure_of(err: KubeError) -> conditions.Failure:
    """Name an API failure for conditions and Events."""
    if err.status == 0:
        reason = "APIUnreachable"
    elif err.status in _NON_RETRYABLE:
        reason = _NON_RETRYABLE[err.status]
    elif err.status == 409:
        reason = "Conflict"
    elif err.status == 429:
        reason = "Throttled"
    else:
        reason = "APIServerError"
    return conditions.Failure(reason, str(err)[:1024], err.retryable)
