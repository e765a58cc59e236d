"""Allow-listed BLE sensors read from their adverts; `bluez` alone touches bleak (the platform)."""
