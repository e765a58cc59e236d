"""`citygw hub serve`: the public page and the SensorThings-shaped read API over the hub database.

Reads only the contract's tables (`register`, `observations`), serves only open-data sensors'
readings, and never writes. `db` opens read-only connections, `catalog` turns register rows
into Things and Datastreams, `store` runs the parameterised observation queries, `options`
parses the OData query options, `sta` shapes the API's JSON, `page` renders the citizens' page
and `app` is the ASGI application uvicorn runs.
"""
