"""The gateway's one typed config schema: TOML or a signed push in, a validated Config out.

Unknown keys are errors and every error names its path (`hub.flush_interval_s`). The same
schema serves the local file, remote pushes and the JSON Schema for editors.
"""

from gateway.config.alerts import AlertRule
from gateway.config.fields import GATEWAY_ID, ConfigError
from gateway.config.load import (
    DEFAULT_PATH,
    json_schema,
    load_config,
    load_document,
    parse_config,
    read_password,
)
from gateway.config.model import BufferSection, Config, GatewaySection
from gateway.config.register import RegisterRecord
from gateway.config.remote import RemoteConfigSection
from gateway.config.sources import (
    BleDevice,
    BleSourceConfig,
    DutyCycle,
    ModbusMeter,
    ModbusSourceConfig,
    SerialSourceConfig,
    SourceConfig,
)
from gateway.config.uplinks import HubSection, UplinkSection

__all__ = [
    "DEFAULT_PATH",
    "GATEWAY_ID",
    "AlertRule",
    "BleDevice",
    "BleSourceConfig",
    "BufferSection",
    "Config",
    "ConfigError",
    "DutyCycle",
    "GatewaySection",
    "HubSection",
    "ModbusMeter",
    "ModbusSourceConfig",
    "RegisterRecord",
    "RemoteConfigSection",
    "SerialSourceConfig",
    "SourceConfig",
    "UplinkSection",
    "json_schema",
    "load_config",
    "load_document",
    "parse_config",
    "read_password",
]
