"""The HTTP API: ``serving.api.main.create_app()`` builds the FastAPI application."""
