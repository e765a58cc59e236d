#!/usr/bin/env bash
# Installs (or upgrades, or removes) the citygw agent on a gateway: Raspberry Pi OS bookworm
# (arm64, armhf) or Debian 12. Run as root from a checkout of the repository:
#
#   sudo deploy/install.sh                          # from PyPI (or the configured pip index)
#   sudo deploy/install.sh --wheelhouse ./wheelhouse  # offline, from `make wheelhouse`
#   sudo deploy/install.sh --uninstall [--purge]    # remove the program [and config + data]
#   deploy/install.sh --root /tmp/root              # into a throwaway root (also DESTDIR=...)
#   --package                                       # for the .deb's maintainer scripts (below)
#
# What goes where (docs/install.md):
#   /opt/citygw                 virtual environment with citygw; replaced on upgrade
#   /usr/local/bin/citygw       symlink to /opt/citygw/bin/citygw
#   /etc/citygw/gateway.toml    config: the example on first install, never overwritten
#   /var/lib/citygw             buffer and status socket: kept on upgrade and uninstall
#   /etc/systemd/system/citygw.service, /etc/udev/rules.d/99-citygw-serial.rules,
#   /etc/modules-load.d/citygw.conf (USB-serial drivers loaded at boot)
#
# Safe to run twice: files are only written when their content differs, and the virtual
# environment is only rebuilt when what it is built from (sources or wheelhouse) changed.
#
# --package: called by the .deb (deploy/deb/), which owns the unit (/lib/systemd/system), the
# udev rules, the modules list and /usr/bin/citygw and does the systemctl calls itself; this
# script then does the user, the virtual environment, /etc/citygw and /var/lib/citygw only.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

ROOT=${DESTDIR:-}
WHEELHOUSE=""
ACTION=install
PURGE=0
PACKAGE=0
PYTHON=${PYTHON:-python3}
while [ $# -gt 0 ]; do
    case $1 in
        --root) ROOT=${2:?--root needs a directory}; shift ;;
        --wheelhouse) WHEELHOUSE=$(cd "${2:?--wheelhouse needs a directory}" && pwd); shift ;;
        --python) PYTHON=${2:?--python needs an interpreter}; shift ;;
        --uninstall) ACTION=uninstall ;;
        --purge) PURGE=1 ;;
        --package) PACKAGE=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ $PURGE = 1 ] && [ $ACTION != uninstall ]; then
    echo "install.sh: --purge goes with --uninstall" >&2; exit 2
fi
ROOT=${ROOT%/}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=$ROOT/opt/citygw
ETC=$ROOT/etc/citygw
STATE=$ROOT/var/lib/citygw
LINK=$ROOT/usr/local/bin/citygw
UNIT=$ROOT/etc/systemd/system/citygw.service
RULES=$ROOT/etc/udev/rules.d/99-citygw-serial.rules
MODULES=$ROOT/etc/modules-load.d/citygw.conf
STAMP=$PREFIX/.citygw-install-stamp
USER_NAME=citygw
CHANGES=0
UNIT_CHANGED=0
RULES_CHANGED=0
MODULES_CHANGED=0
PROGRAM_CHANGED=0

say() { echo "install.sh: $*"; }
changed() { say "$*"; CHANGES=$((CHANGES + 1)); }
die() { echo "install.sh: $*" >&2; exit 1; }

# systemctl and udevadm only for the running system, never for a --root install.
systemd_running() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }
user_exists() { [ -z "$ROOT" ] && getent passwd "$USER_NAME" >/dev/null; }

# install_file SRC DEST MODE: writes DEST only if its content or mode differs.
install_file() {
    local src=$1 dest=$2 mode=$3
    if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "${mode#0}" ]; then
        return 1
    fi
    install -D -m "$mode" "$src" "$dest"
    changed "installed $dest"
}

# make_dir DIR MODE [OWNER]: creates DIR, or fixes its mode/owner, reporting only real changes.
make_dir() {
    local dir=$1 mode=$2 owner=${3:-}
    if [ ! -d "$dir" ]; then
        install -d -m "$mode" "$dir"
        changed "created $dir"
    elif [ "$(stat -c %a "$dir")" != "${mode#0}" ]; then
        chmod "$mode" "$dir"
        changed "mode $mode on $dir"
    fi
    if [ -n "$owner" ] && user_exists && [ "$(stat -c %U:%G "$dir")" != "$owner" ]; then
        chown "$owner" "$dir"
        changed "owner $owner on $dir"
    fi
}

ensure_user() {
    if [ -n "$ROOT" ]; then
        say "note: --root install: not creating user $USER_NAME (the target system needs it)"
        return
    fi
    if ! getent passwd "$USER_NAME" >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/citygw --no-create-home \
            --shell /usr/sbin/nologin --comment "citygw gateway agent" "$USER_NAME"
        changed "created system user $USER_NAME"
    fi
    local group
    for group in dialout bluetooth; do
        # The unit's SupplementaryGroups= fails the start without them (bluez, if installed
        # later, keeps an existing bluetooth group: its postinst creates it the same way).
        if ! getent group "$group" >/dev/null; then
            groupadd --system "$group"
            changed "created group $group"
        fi
        if ! id -nG "$USER_NAME" | tr ' ' '\n' | grep -qx "$group"; then
            usermod -a -G "$group" "$USER_NAME"
            changed "added $USER_NAME to group $group"
        fi
    done
}

# What the virtual environment is built from: a change means an upgrade.
source_fingerprint() {
    {
        "$PYTHON" -c 'import sys; print(sys.version)'
        if [ -n "$WHEELHOUSE" ]; then
            (cd "$WHEELHOUSE" && find . -maxdepth 1 -name '*.whl' -print0 | sort -z \
                | xargs -0r sha256sum)
        else
            (cd "$REPO" && find pyproject.toml constraints.txt gateway drivers -type f \
                -name '*.py' -o -type f -name '*.toml' -o -type f -name '*.txt' \
                | grep -v __pycache__ | sort | xargs sha256sum)
        fi
    } | sha256sum | cut -d' ' -f1
}

# The unit runs the agent with -OO and PYTHONPYCACHEPREFIX=/opt/citygw/pycache (see
# deploy/citygw.service): compile that bytecode now, for the virtual environment and for the
# standard library modules the agent imports (gateway.system.bytecode imports them all).
compile_bytecode() {
    local venv_python=$1 cache=$PREFIX/pycache
    rm -rf "$cache"
    PYTHONPYCACHEPREFIX=$cache "$venv_python" -OO -m compileall -q -j 0 \
        "$("$venv_python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
        >/dev/null || die "compiling the bytecode into $cache failed"
    PYTHONPYCACHEPREFIX=$cache PYTHONDONTWRITEBYTECODE='' "$venv_python" -OO \
        -m gateway.system.bytecode || die "the installed agent cannot import its modules"
}

install_program() {
    local fingerprint pip_args
    fingerprint=$(source_fingerprint)
    if [ -x "$PREFIX/bin/citygw" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$fingerprint" ]; then
        return
    fi
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON is older than 3.11 (Raspberry Pi OS bookworm and Debian 12 have 3.11)"
    "$PYTHON" -c 'import ensurepip' 2>/dev/null \
        || die "$PYTHON cannot create virtual environments: apt-get install python3-venv"
    local venv_python=$PREFIX/bin/python
    if [ -x "$venv_python" ] && ! cmp -s <("$venv_python" -c 'import sys; print(sys.version)') \
            <("$PYTHON" -c 'import sys; print(sys.version)'); then
        say "Python changed: rebuilding $PREFIX"
        rm -rf "$PREFIX"
    fi
    [ -x "$venv_python" ] || "$PYTHON" -m venv "$PREFIX"
    pip_args=(--quiet --disable-pip-version-check --no-input --upgrade)
    [ -f "$REPO/constraints.txt" ] && pip_args+=(-c "$REPO/constraints.txt")
    if [ -n "$WHEELHOUSE" ]; then
        local wheel
        wheel=$(find "$WHEELHOUSE" -maxdepth 1 -name 'citygw-*.whl' | sort -V | tail -n 1)
        [ -n "$wheel" ] || die "no citygw-*.whl in $WHEELHOUSE (make wheelhouse builds one)"
        "$venv_python" -m pip install "${pip_args[@]}" --no-index --find-links "$WHEELHOUSE" \
            "$wheel"
        # A rebuilt wheel with an unchanged version number is still a change: reinstall it.
        "$venv_python" -m pip install "${pip_args[@]}" --no-index --no-deps --force-reinstall \
            "$wheel"
    else
        "$venv_python" -m pip install "${pip_args[@]}" "$REPO"
    fi
    "$PREFIX/bin/citygw" --help >/dev/null || die "the installed citygw does not start"
    compile_bytecode "$venv_python"
    install -d "$PREFIX/share/doc/citygw"
    cp "$REPO/docs/install.md" "$REPO/config/gateway.example.toml" "$PREFIX/share/doc/citygw/"
    echo "$fingerprint" >"$STAMP"
    PROGRAM_CHANGED=1
    changed "installed citygw $("$venv_python" -I -c \
        'from importlib.metadata import version; print(version("citygw"))') into $PREFIX"
}

# The unit, udev rules, modules list and command link, with the systemctl/udevadm calls they
# need (the .deb ships these files itself: --package skips this).
install_system_files() {
    if [ "$(readlink "$LINK" 2>/dev/null)" != /opt/citygw/bin/citygw ]; then
        mkdir -p "$(dirname "$LINK")"
        ln -sfn /opt/citygw/bin/citygw "$LINK"
        changed "linked $LINK"
    fi
    install_file "$REPO/deploy/citygw.service" "$UNIT" 0644 && UNIT_CHANGED=1
    install_file "$REPO/deploy/99-citygw-serial.rules" "$RULES" 0644 && RULES_CHANGED=1
    install_file "$REPO/deploy/citygw-modules.conf" "$MODULES" 0644 && MODULES_CHANGED=1

    if ! systemd_running; then
        say "systemd is not running here (or --root): skipped systemctl and udevadm"
        return
    fi
    if [ $RULES_CHANGED = 1 ] && command -v udevadm >/dev/null; then
        udevadm control --reload && udevadm trigger --subsystem-match=tty
    fi
    if [ $MODULES_CHANGED = 1 ]; then modprobe -a usbserial cdc_acm || true; fi
    if [ $UNIT_CHANGED = 1 ]; then systemctl daemon-reload; fi
    if ! systemctl is-enabled --quiet citygw; then
        systemctl enable citygw
        changed "enabled citygw.service (start it once the config is done)"
    fi
    if [ $PROGRAM_CHANGED = 1 ] || [ $UNIT_CHANGED = 1 ]; then
        systemctl try-restart citygw  # restarts it only if it is running
    fi
}

do_install() {
    [ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || die "run as root (or use --root DIR for a test root)"
    ensure_user
    install_program
    make_dir "$ETC" 0750 "root:$USER_NAME"
    make_dir "$ETC/tls" 0750 "root:$USER_NAME"
    if [ ! -e "$ETC/gateway.toml" ]; then
        install -m 0640 "$REPO/config/gateway.example.toml" "$ETC/gateway.toml"
        user_exists && chown "root:$USER_NAME" "$ETC/gateway.toml"
        changed "installed the example config as $ETC/gateway.toml: edit it (docs/install.md)"
    fi
    make_dir "$STATE" 0750 "$USER_NAME:$USER_NAME"
    [ $PACKAGE = 1 ] || install_system_files
    if [ $CHANGES = 0 ]; then say "nothing to do: citygw is installed and up to date"; fi
}

do_uninstall() {
    [ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || die "run as root (or use --root DIR for a test root)"
    local path paths=("$UNIT" "$RULES" "$MODULES" "$PREFIX")
    if [ $PACKAGE = 1 ]; then
        paths=("$PREFIX")  # dpkg removes its own files and stops the service
    elif systemd_running && systemctl list-unit-files citygw.service >/dev/null 2>&1; then
        systemctl disable --now citygw 2>/dev/null || true
    fi
    for path in "${paths[@]}"; do
        if [ -e "$path" ]; then rm -rf "$path"; changed "removed $path"; fi
    done
    if [ "$(readlink "$LINK" 2>/dev/null)" = /opt/citygw/bin/citygw ]; then
        rm -f "$LINK"; changed "removed $LINK"
    fi
    if systemd_running; then systemctl daemon-reload; fi
    if [ $PURGE = 1 ]; then
        for path in "$ETC" "$STATE"; do
            if [ -e "$path" ]; then rm -rf "$path"; changed "purged $path"; fi
        done
        if user_exists; then userdel "$USER_NAME"; changed "removed user $USER_NAME"; fi
    else
        local how=--purge
        [ $PACKAGE = 0 ] || how="purging the package (dpkg --purge citygw)"
        say "kept $ETC and $STATE (config and unsent readings); $how removes them"
    fi
}

if [ $ACTION = install ]; then do_install; else do_uninstall; fi
