"""The REST adapter: routes, input coercion, OpenAPI and the Starlette app."""
