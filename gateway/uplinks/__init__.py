"""Delivery: batches from the buffer to where they must go, acknowledged readings released.

The only package on the agent side that imports aiomqtt or paho-mqtt, and within it only
`client` (the broker connection); `mqtt` is the hub uplink on top of it. Likewise HTTP (h11) only
in `http_client`, under the HTTP formats (`sensorthings`, `sensor_community`). One module an
uplink kind.
"""
