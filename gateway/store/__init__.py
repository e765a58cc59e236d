"""The durable buffer, the gateway's promise: a reading it accepted is handed out in order until
every uplink that must carry it acknowledged it, across crashes; SQLite, one chunk per commit
and owner, one lane per uplink."""
