"""Shared building blocks of the v1alpha1 models: the base model, CEL rules, value types.

Every model inherits :class:`ApiModel`: camelCase on the wire, snake_case in Python,
immutable instances, unknown fields rejected.  Cross-field rules are declared once as
:class:`Rule` objects on the model class: the CRD generator emits them as
``x-kubernetes-validations`` (CEL, checked by the API server) and the model validator runs
their Python mirror, so a spec the API server rejects never parses either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

#: Go-style durations restricted to whole units: ``30s``, ``2m``, ``1h30m``, ``500ms``.
DURATION_PATTERN = r"^([0-9]{1,6}(ms|s|m|h))+$"

# An OCI image reference with a mandatory tag or digest (no implicit ``:latest``):
# [registry[:port]/]path[/path...](:tag[@digest] | @digest).  RE2-compatible, so the API
# server (Go) and pydantic (Rust) agree on it.
_DOMAIN_COMPONENT = r"[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(\.{_DOMAIN_COMPONENT})*(:[0-9]{{1,5}})?"
_PATH_COMPONENT = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"sha256:[a-f0-9]{64}"
IMAGE_PATTERN = (
    rf"^({_DOMAIN}/)?{_PATH_COMPONENT}(/{_PATH_COMPONENT})*(:{_TAG}(@{_DIGEST})?|@{_DIGEST})$"
)

#: A DNS-1123 label (names of Kubernetes objects such as Secrets and metrics).
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: A DNS-1123 subdomain (host names, Secret names).
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: An environment variable name (C identifier).
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: A Kubernetes resource quantity such as ``500m``, ``1Gi`` or ``0.5``.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
#: An http(s) URL.
URL_PATTERN = r"^https?://[^\s/$.?#][^\s]*$"

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32)]
ImageRef = Annotated[str, Field(pattern=IMAGE_PATTERN, max_length=512)]
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]
DnsSubdomain = Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=253)]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN, min_length=1, max_length=128)]
Url = Annotated[str, Field(pattern=URL_PATTERN, max_length=2048)]
Quantity = Annotated[
    int | Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)],
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
]
#: Short free-form strings, such as values of configuration maps.
ShortText = Annotated[str, Field(max_length=1024)]
#: Label or annotation maps.
StringMap = Annotated[dict[str, Annotated[str, Field(max_length=4096)]], Field(max_length=64)]
Int32 = Annotated[int, Field(json_schema_extra={"format": "int32"})]
Int64 = Annotated[int, Field(json_schema_extra={"format": "int64"})]

_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> timedelta:
    """Turn a duration such as ``1h30m`` (already validated by the schema) into a timedelta."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"not a duration: {value!r}")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))
    return timedelta(seconds=seconds)


RuleReason = Literal["FieldValueInvalid", "FieldValueRequired", "FieldValueForbidden"]


@dataclass(frozen=True)
class Rule:
    """One cross-field rule: CEL for the API server, a Python mirror for the model.

    ``check`` receives the model instance and returns True when the rule holds; it is
    ``None`` for transition rules (they need ``oldSelf``, which only the API server has).
    ``field_path`` is relative to the model (``.steps``) so the error names the field.
    """

    rule: str
    message: str
    check: Callable[[Any], bool] | None
    field_path: str | None = None
    reason: RuleReason | None = None

    def to_openapi(self) -> dict[str, str]:
        """The ``x-kubernetes-validations`` entry of this rule."""
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


def _emit_rules(schema: dict[str, Any], model: type[BaseModel]) -> None:
    rules: tuple[Rule, ...] = getattr(model, "__rules__", ())
    if rules:
        schema["x-kubernetes-validations"] = [r.to_openapi() for r in rules]


class ApiModel(BaseModel):
    """Base of every PaymentService model: camelCase aliases, frozen, strict about fields."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        json_schema_extra=_emit_rules,
    )

    __rules__: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in type(self).__rules__:
            if rule.check is not None and not rule.check(self):
                where = f"{rule.field_path.lstrip('.')}: " if rule.field_path else ""
                raise ValueError(f"{where}{rule.message}")
        return self


def unique(values: Iterable[str], what: str) -> None:
    """Raise when ``values`` repeats one (the Python mirror of a list-map's key)."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what}: {value!r}")
        seen.add(value)


def present(*values: object) -> int:
    """How many of ``values`` are set (not None)."""
    return sum(v is not None for v in values)
