"""The OpenAPI 3.1 document served at ``/openapi.json``, built from the pydantic schemas."""

from __future__ import annotations

from typing import Any

from payment_runtime.api import schemas

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}

_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_PAYMENT_ID = {
    "name": "payment_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


def _op(
    summary: str,
    roles: list[str],
    *,
    body: str | None = None,
    mutating: bool = False,
    params: list[dict[str, Any]] | None = None,
    ok: str = "200",
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "x-roles": roles,
        "parameters": [*(params or []), *([_IDEMPOTENCY] if mutating else [])],
        "responses": {
            ok: {
                "description": "OK",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Payment"}}
                },
            },
            "default": {
                "description": "error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if mutating:  # with spec.rateLimit on: every counted answer carries RateLimit-* too
        op["responses"]["429"] = {
            "description": "rate_limited: the client's quota is spent (RateLimit-* headers)",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    if body == "CreatePayment":
        op["responses"]["402"] = {
            "description": "card_declined, payment_rejected or velocity_limit_exceeded",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    if body:
        op["requestBody"] = {
            "required": body == "CreatePayment",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return op


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    process = ["payment_admin", "payment_operator"]
    read = ["payment_admin", "payment_operator", "payment_viewer", "payment_support"]
    refund = ["payment_admin", "payment_support"]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Paydeck payment runtime", "version": "1"},
        "paths": {
            "/api/v1/payments": {
                "post": _op(
                    "Create and confirm a payment",
                    process,
                    body="CreatePayment",
                    mutating=True,
                    ok="201",
                )
            },
            "/api/v1/payments/{payment_id}": {
                "get": _op("Get a payment", read, params=[_PAYMENT_ID])
            },
            "/api/v1/payments/{payment_id}/capture": {
                "post": _op(
                    "Capture an authorized payment", process, mutating=True, params=[_PAYMENT_ID]
                )
            },
            "/api/v1/payments/{payment_id}/cancel": {
                "post": _op(
                    "Cancel an uncaptured payment", process, mutating=True, params=[_PAYMENT_ID]
                )
            },
            "/api/v1/payments/{payment_id}/refunds": {
                "post": _op(
                    "Refund a captured payment",
                    refund,
                    body="CreateRefund",
                    mutating=True,
                    params=[_PAYMENT_ID],
                    ok="201",
                )
            },
            "/api/v1/payments/providers/{country}": {
                "get": _op(
                    "Payment methods offered in a country",
                    read,
                    params=[
                        {
                            "name": "country",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
                        }
                    ],
                )
            },
            "/webhooks/stripe": {
                "post": {
                    "summary": "Stripe webhook endpoint (Stripe-Signature verified)",
                    "responses": {
                        "200": {"description": "accepted"},
                        "400": {"description": "invalid signature"},
                        "404": {
                            "description": "webhooks disabled (no webhook secret configured):"
                            " error code webhooks_disabled"
                        },
                    },
                }
            },
            "/health": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}
            },
            "/health/ready": {
                "get": {
                    "summary": "Readiness: database and schema version",
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text exposition"}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {
                "CreatePayment": schemas.CreatePayment.model_json_schema(),
                "CreateRefund": schemas.CreateRefund.model_json_schema(),
                "Payment": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "amount": {
                            "type": "integer",
                            "description": "ISO 4217 minor units (1250 JPY is 1250 yen, "
                            "12345 BHD is 12.345 dinar)",
                        },
                        "amount_display": {"type": "string", "examples": ["12.345 BHD"]},
                        "currency": {"type": "string"},
                        "status": {"type": "string"},
                        "amount_refunded": {"type": "integer"},
                    },
                },
                "Error": _ERROR,
            },
        },
    }
