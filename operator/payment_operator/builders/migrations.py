"""The migration Job of a revision: ``payment-runtime migrate`` with the new image, once.

``<name>-migrate-<revision>`` runs before any pod of the revision exists, under the
service's ServiceAccount, with the same settings and secret references as the pods, and
meets the ``restricted`` Pod Security Standard.  Its pods carry the service's identity
labels but not the Service's selector labels, so the Service and the PodDisruptionBudget
never pick them; the NetworkPolicy selects them by :data:`~.meta.LABEL_PAYMENT_SERVICE`.
"""

from __future__ import annotations

from typing import Any

from payment_operator.api.v1alpha1 import PaymentService
from payment_operator.builders import meta, workload

#: How long a finished Job (and its pod's logs) stays; success is remembered in status.
TTL_SECONDS_AFTER_FINISHED = 86400
COMPONENT = "migration"
LABEL_COMPONENT = "app.kubernetes.io/component"


def job_name(ps: PaymentService, rev: str) -> str:
    """``<name>-migrate-<revision>``: one name per revision, so one Job per revision."""
    return f"{meta.name(ps)}-migrate-{rev}"


def pod_labels(ps: PaymentService, rev: str) -> dict[str, str]:
    """Labels of the Job's pod: who it belongs to, never the Service's selector."""
    return {
        meta.LABEL_PAYMENT_SERVICE: meta.name(ps),
        meta.LABEL_MANAGED_BY: meta.MANAGED_BY,
        meta.LABEL_PART_OF: meta.PART_OF,
        LABEL_COMPONENT: COMPONENT,
        meta.LABEL_REVISION: rev,
    }


def migration_job(ps: PaymentService) -> dict[str, Any]:
    """The Job that migrates the schema for the spec's revision."""
    rev = workload.revision(ps)
    settings = ps.spec.database.migrations
    labels = {meta.LABEL_REVISION: rev, LABEL_COMPONENT: COMPONENT}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta.object_meta(ps, job_name(ps, rev), extra_labels=labels),
        "spec": {
            "backoffLimit": settings.backoff_limit,
            "activeDeadlineSeconds": settings.timeout_seconds,
            "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
            "template": {
                "metadata": {"labels": pod_labels(ps, rev)},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": meta.name(ps),
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": workload.pod_security_context(),
                    "containers": [workload.migrate_container(ps)],
                    "volumes": workload.volumes(ps, kafka=False),
                },
            },
        },
    }
