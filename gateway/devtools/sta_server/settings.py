"""A minimal Django project serving OGC SensorThings API 1.1 (django-ogc-sensorthings 1.2.0).

For the demo and the tests only: the server the `sensorthings` uplink delivers to (recipe:
shared DESIGN.md, "SensorThings API server"). `citygw demo` and tests/integration/sta_server
run it with DJANGO_SETTINGS_MODULE=gateway.devtools.sta_server.settings. The SQLite file comes from
$STA_DB; the API is at `/sensorthings/v1.1/`.
"""

from __future__ import annotations

import os
from uuid import UUID

SECRET_KEY = "citygw-demo-and-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "gateway.devtools.sta_server.urls"
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "sensorthings.versions.v1_1",
    "sensorthings.versions.v1_1.backends.django",
    "sensorthings.versions.v1_1.extensions.dataarray",
]
MIDDLEWARE: list[str] = []
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("STA_DB", "sta.sqlite3"),
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SENSORTHINGS_V1_1_SERVICE_URL = os.environ.get("STA_SERVICE_URL", "http://127.0.0.1:8000")
SENSORTHINGS_V1_1_BACKEND_ADAPTER = (
    "sensorthings.versions.v1_1.backends.django.adapter.DjangoBackendAdapter"
)
SENSORTHINGS_V1_1_ID_TYPE = UUID
SENSORTHINGS_V1_1_ID_DELIMITER = "'"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
