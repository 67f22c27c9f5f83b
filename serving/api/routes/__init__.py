"""Thin route modules: parse and validate, call the service, shape the response."""
