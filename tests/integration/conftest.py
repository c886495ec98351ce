"""Fixtures shared by the integration tests: the API tests' database and app (see
``api_support.py``)."""

from api_support import api, api_template

__all__ = ["api", "api_template"]
