"""The board: the only module that imports MicroPython's `machine` and `bluetooth`.

main.py asks it for every bus, pin, UART, the watchdog and the radio, and hands them to the
sensor drivers and the link, which take them as parameters (micropython-lib style) and import no
port module. tests/firmware and the virtual node run the same firmware on fake `machine` and
`bluetooth` modules (firmware/sim/fakes).
"""

import sys

import machine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RP2_MAX_WDT_MS = 8388  # the RP2040's watchdog cannot count longer


def i2c(bus: int, sda: "int | None" = None, scl: "int | None" = None, freq: int = 100000) -> "Any":
    """I2C `bus` on pins `sda` and `scl`, or on the board's default pins when `sda` is None."""
    if sda is None:
        return machine.I2C(bus)
    return machine.I2C(bus, sda=machine.Pin(sda), scl=machine.Pin(scl), freq=freq)


def uart(uart_id: int, baudrate: int, tx: "int | None" = None, rx: "int | None" = None) -> "Any":
    """UART `uart_id` on pins `tx` and `rx`, or on the board's default pins when `tx` is None."""
    if tx is None:
        return machine.UART(uart_id, baudrate=baudrate)
    return machine.UART(uart_id, baudrate=baudrate, tx=machine.Pin(tx), rx=machine.Pin(rx))


def adc(pin: int) -> "Any":
    """The ADC on GPIO `pin` (read_u16())."""
    return machine.ADC(machine.Pin(pin))


def output(pin: int) -> "Any":
    """GPIO `pin` as an output (value(0|1)): an LED."""
    return machine.Pin(pin, machine.Pin.OUT)


def watchdog(timeout_ms: int) -> "Any":
    """The hardware watchdog, armed: the board resets unless it is fed within `timeout_ms`
    (capped where the chip cannot count that long)."""
    if sys.platform == "rp2":
        timeout_ms = min(timeout_ms, RP2_MAX_WDT_MS)
    return machine.WDT(timeout=timeout_ms)


def radio() -> "Any":
    """The BLE radio, active. `bluetooth` is imported only here, when the node advertises: a
    board without BLE (a plain Pico) runs the UART link without it."""
    import bluetooth

    ble = bluetooth.BLE()
    ble.active(True)
    return ble


def reset() -> None:
    """Reboot the board, as the reset button does."""
    machine.reset()
