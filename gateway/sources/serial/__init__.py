"""Sensors on a UART (USB adapter or GPIO), citygw nodes included: reads, commands, duty cycle."""
