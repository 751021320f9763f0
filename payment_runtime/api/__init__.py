"""The HTTP API: a Starlette ASGI app with schemas, auth, health, metrics and OpenAPI."""
