"""The HTTP layer: routers, dependencies and error handlers.

Thin: parse, call a use case, return.
"""
