"""A real SensorThings API 1.1 server for the integration tests (Django + SQLite)."""
