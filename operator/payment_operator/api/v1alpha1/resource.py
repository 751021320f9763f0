"""The PaymentService resource as a whole, its identity, and :func:`parse`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from payment_operator.api.v1alpha1.base import ApiModel, StringMap
from payment_operator.api.v1alpha1.spec import PaymentServiceSpec
from payment_operator.api.v1alpha1.status import PaymentServiceStatus

#: PaymentService names: DNS-1035 labels short enough for the suffixes of child objects.
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MAX_LENGTH = 40
GROUP = "paydeck.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "PaymentService"
PLURAL = "paymentservices"
SINGULAR = "paymentservice"
SHORT_NAMES = ("paysvc",)
CATEGORIES = ("paydeck", "all")


class ObjectMeta(ApiModel):
    """The parts of metav1.ObjectMeta the operator reads; the rest is ignored."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, description="Name of the object.")
    namespace: str | None = Field(default=None, description="Namespace of the object.")
    uid: str | None = Field(default=None, description="Unique ID set by the API server.")
    generation: int | None = Field(default=None, description="Generation of the spec.")
    resource_version: str | None = Field(
        default=None, description="Version for optimistic locking."
    )
    labels: StringMap | None = Field(default=None, description="Labels.")
    annotations: StringMap | None = Field(default=None, description="Annotations.")
    creation_timestamp: datetime | None = Field(default=None, description="When it was created.")
    deletion_timestamp: datetime | None = Field(default=None, description="When deletion began.")


class PaymentService(ApiModel):
    """A payment service: the runtime, its integrations, and how new versions roll out."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["paydeck.dev/v1alpha1"] = Field(
        default="paydeck.dev/v1alpha1", description="paydeck.dev/v1alpha1."
    )
    kind: Literal["PaymentService"] = Field(default="PaymentService", description="PaymentService.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard metadata.")
    spec: PaymentServiceSpec = Field(description="The desired state.")
    status: PaymentServiceStatus | None = Field(default=None, description="The observed state.")

    @model_validator(mode="after")
    def _check_name(self) -> PaymentService:
        name = self.metadata.name
        if name is not None and (
            len(name) > NAME_MAX_LENGTH or not re.fullmatch(NAME_PATTERN, name)
        ):
            raise ValueError(
                f"metadata.name: must be a DNS-1035 label of at most {NAME_MAX_LENGTH} "
                "characters (the names of child objects add suffixes to it)"
            )
        return self

    def manifest(self) -> dict[str, Any]:
        """The object as written to the API server: camelCase, no unset fields, no status."""
        return self.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            exclude={"status"},
        )


def parse(body: Mapping[str, Any]) -> PaymentService:
    """Build the model from an object the API server returned (a Kopf body or a plain dict).

    The API server has already validated the object and filled in the schema's defaults,
    so this only fails if the CRD and the models disagree.
    """
    return PaymentService.model_validate(plain(body))


def plain(value: Any) -> Any:
    """Deep-copy Mapping views (such as Kopf's) and sequences into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
