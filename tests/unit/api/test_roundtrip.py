"""Property tests: generated valid models serialise, pass the OpenAPI schema and parse back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from payment_operator.api import parse
from payment_operator.api import v1alpha1 as api

from tests.unit.api import schema_tools
from tests.unit.api.strategies import payment_services

pytestmark = pytest.mark.unit


@settings(max_examples=150, deadline=None)
@given(payment_services())
def test_manifest_parses_back_equal(service: api.PaymentService) -> None:
    assert parse(service.manifest()) == service


@settings(max_examples=150, deadline=None)
@given(payment_services())
def test_manifest_passes_the_openapi_schema(service: api.PaymentService) -> None:
    manifest = service.manifest()
    errors = [e.message for e in schema_tools.validator().iter_errors(manifest)]
    assert not errors


@settings(max_examples=150, deadline=None)
@given(payment_services())
def test_schema_defaulting_changes_nothing_the_model_sees(service: api.PaymentService) -> None:
    assert parse(schema_tools.apply_defaults(service.manifest())) == service
