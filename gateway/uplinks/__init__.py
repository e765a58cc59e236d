"""Delivery: batches from the buffer to where they must go, acknowledged readings released.

The only package on the agent side that imports aiomqtt or paho-mqtt, and within it only
`client` (the broker connection); `mqtt` is the hub uplink on top of it. One module an uplink kind.
"""
