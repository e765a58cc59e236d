"""Package discovery plus the node firmware: everything else is in pyproject.toml.

`packages.find` in pyproject.toml cannot add a package that lives outside the tree it searches,
and the node firmware (firmware/, MicroPython files) travels in the wheel as
`gateway.node_firmware` (see package-dir there), so `citygw node flash` works from an install.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["gateway", "gateway.*", "drivers", "drivers.*"]),
        "gateway.node_firmware",
    ],
)
