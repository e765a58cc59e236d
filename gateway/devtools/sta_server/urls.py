"""The SensorThings API under /sensorthings/ (v1.1 at /sensorthings/v1.1/)."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("sensorthings/", include("sensorthings.versions.v1_1.urls"))]
