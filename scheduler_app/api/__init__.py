"""The REST API at /api/v1/: views and serializers over the services, API keys."""
