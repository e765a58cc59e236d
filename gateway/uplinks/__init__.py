"""Delivery: batches from the buffer to where they must go, acknowledged readings released.

The only package on the agent side that imports aiomqtt or paho-mqtt. One module an uplink kind.
"""
