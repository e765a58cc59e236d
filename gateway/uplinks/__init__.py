"""Delivery: batches from the buffer to where they must go, acknowledged readings released.

The only package on the agent side that imports aiomqtt or paho-mqtt, and within it only
`client` (the broker connection); `mqtt` is an MQTT uplink on top of it (the hub's, or a
`citygw` `[[uplinks]]` record's), `http` drives a `destination` (the HTTP formats), `factory`
builds each uplink from its config. Likewise HTTP (h11) only in `http_client`, under the HTTP
formats (`sensorthings`, `sensor_community`). One module an uplink kind; each on its own lane.
"""
