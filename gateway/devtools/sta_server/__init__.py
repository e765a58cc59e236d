"""A minimal OGC SensorThings API 1.1 server (django-ogc-sensorthings, SQLite): the demo's and
the tests' `sensorthings` destination. Django runs it; the gateway never imports it."""
