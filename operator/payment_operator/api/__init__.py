"""The PaymentService API: pydantic models (the single source of truth) and the CRD generator.

The package is pure: it never imports Kopf or a Kubernetes client.  Other layers use
:func:`parse` to turn an object the API server returned into a typed
:class:`~payment_operator.api.v1alpha1.PaymentService`.
"""

from payment_operator.api.v1alpha1 import PaymentService, parse

__all__ = ["PaymentService", "parse"]
