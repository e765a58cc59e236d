#!/usr/bin/env bash
# Builds citygw_<version>_<arch>.deb (`make deb`): the wheels of a wheelhouse for one
# architecture, install.sh and the files it installs; the maintainer scripts (deploy/deb/) build
# the virtual environment in /opt/citygw from those wheels, offline, with install.sh --package.
# Needs only dpkg-deb (no debhelper, no root).
#
#   deploy/build-deb.sh [--arch arm64|armhf|amd64] [--wheelhouse DIR] [--out DIR]
#
# Defaults: this machine's architecture, ./wheelhouse (`make wheelhouse`), ./dist.
# Pi OS 64-bit is arm64, 32-bit (Pi Zero 2 W, Pi 3/4 with the 32-bit image) armhf.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARCH=$(dpkg --print-architecture)
WHEELHOUSE=$REPO/wheelhouse
OUT=$REPO/dist
MAINTAINER=${DEB_MAINTAINER:-citygw developers <citygw@example.org>}
while [ $# -gt 0 ]; do
    case $1 in
        --arch) ARCH=${2:?--arch needs a Debian architecture}; shift ;;
        --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a directory}; shift ;;
        --out) OUT=${2:?--out needs a directory}; shift ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "build-deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
die() { echo "build-deb.sh: $*" >&2; exit 1; }

case $ARCH in  # Debian architecture -> the platform tag pip uses on it
    arm64) MACHINE=aarch64 ;;
    armhf) MACHINE=armv7l ;;
    amd64) MACHINE=x86_64 ;;
    *) die "--arch $ARCH: citygw packages arm64, armhf and amd64" ;;
esac
[ -d "$WHEELHOUSE" ] || die "no wheelhouse $WHEELHOUSE (make wheelhouse)"
CITYGW_WHEEL=$(find "$WHEELHOUSE" -maxdepth 1 -name 'citygw-*.whl' | sort -V | tail -n 1)
[ -n "$CITYGW_WHEEL" ] || die "no citygw-*.whl in $WHEELHOUSE (make wheelhouse builds one)"
VERSION=$(basename "$CITYGW_WHEEL" | cut -d- -f2)

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
PKG=$STAGE/citygw
LIB=$PKG/usr/lib/citygw

# install.sh finds what it installs relative to itself: the same layout as the repository.
install -D -m 0755 "$REPO/deploy/install.sh" "$LIB/deploy/install.sh"
install -D -m 0644 "$REPO/config/gateway.example.toml" "$LIB/config/gateway.example.toml"
install -D -m 0644 "$REPO/docs/install.md" "$LIB/docs/install.md"
install -D -m 0644 "$REPO/constraints.txt" "$LIB/constraints.txt"
install -d "$LIB/wheelhouse"
install -m 0644 "$CITYGW_WHEEL" "$LIB/wheelhouse/"
wheels=0
for file in "$WHEELHOUSE"/*; do
    case $(basename "$file") in
        citygw-*) continue ;;
        *-any.whl | *_"$MACHINE".whl | *.tar.gz) install -m 0644 "$file" "$LIB/wheelhouse/" ;;
        *) continue ;;
    esac
    wheels=$((wheels + 1))
done
[ $wheels -gt 0 ] || die "no wheels for $MACHINE in $WHEELHOUSE"
# An sdist is used only where no wheel fits; then postinst needs a compiler (and the build's
# own requirements, which an offline install does not have).
for sdist in "$LIB"/wheelhouse/*.tar.gz; do
    [ -e "$sdist" ] || continue
    name=$(basename "$sdist" .tar.gz)
    project=${name%-*}
    project=${project//-/_}  # as in wheel names
    if ! compgen -G "$LIB/wheelhouse/${project,,}-*.whl" >/dev/null; then
        echo "build-deb.sh: warning: $ARCH: no wheel for ${name}, only its sdist: installing" \
            "needs a compiler and network (PIWHEELS=1 make wheelhouse has armv7l wheels)" >&2
    fi
done

install -D -m 0644 "$REPO/deploy/citygw.service" "$PKG/lib/systemd/system/citygw.service"
install -D -m 0644 "$REPO/deploy/99-citygw-serial.rules" \
    "$PKG/lib/udev/rules.d/99-citygw-serial.rules"
install -D -m 0644 "$REPO/deploy/citygw-modules.conf" "$PKG/usr/lib/modules-load.d/citygw.conf"
install -d "$PKG/usr/bin"
ln -s /opt/citygw/bin/citygw "$PKG/usr/bin/citygw"

DOC=$PKG/usr/share/doc/citygw
install -D -m 0644 "$REPO/deploy/deb/copyright" "$DOC/copyright"
{
    echo "citygw ($VERSION) unstable; urgency=medium"
    echo
    echo "  * citygw $VERSION, built from a wheelhouse by deploy/build-deb.sh."
    echo
    echo " -- $MAINTAINER  $(date -R -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")"
} | gzip -9n >"$DOC/changelog.gz"
chmod 0644 "$DOC/changelog.gz"

install -d "$PKG/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "$REPO/deploy/deb/$script" "$PKG/DEBIAN/$script"
done
cat >"$PKG/DEBIAN/control" <<CONTROL
Package: citygw
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
Depends: python3 (>= 3.11), python3 (<< 3.12), python3-venv, passwd
Section: net
Priority: optional
Description: smart-city edge gateway agent
 citygw reads sensors over serial lines and Bluetooth Low Energy, buffers
 readings durably in SQLite and forwards them to the city's hub over MQTT.
 .
 The package installs the agent into a virtual environment in /opt/citygw,
 built at installation from the Python wheels it carries (no network needed),
 a hardened systemd unit (enabled, started once /etc/citygw/gateway.toml is
 edited), the system user citygw and udev rules that give USB-serial adapters
 stable names under /dev/citygw/. Removing keeps the config and the buffer of
 unsent readings; purging deletes them.
CONTROL

mkdir -p "$OUT"
DEB=$OUT/citygw_${VERSION}_$ARCH.deb
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
echo "build-deb.sh: $DEB (citygw $VERSION and $wheels dependency files for $MACHINE)"
