#!/usr/bin/env bash
# Set up a fresh machine for Vigil: system packages (Java 17 for TorchServe, PostgreSQL for
# the database tests), a virtualenv with the pinned stack, and Vigil itself (editable).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
apt_packages=()
command -v java >/dev/null 2>&1 || apt_packages+=(openjdk-17-jre-headless)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_packages+=(postgresql)
command -v prometheus >/dev/null 2>&1 || apt_packages+=(prometheus)
# espeak-ng speaks the generated training clips (`vigil audio generate`, the demo).
command -v espeak-ng >/dev/null 2>&1 || apt_packages+=(espeak-ng)
# A real browser for the review page's test (no browser can be downloaded at run time).
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
if [ ${#apt_packages[@]} -gt 0 ]; then
    echo "==> installing system packages: ${apt_packages[*]}"
    if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${apt_packages[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$VENV/.vigil-installed" ] || [ setup.cfg -nt "$VENV/.vigil-installed" ]; then
    echo "==> installing the pinned stack into $VENV (first time: a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
    "$VENV/bin/python" -m pip install -q -e ".[models,dev,test]"
    touch "$VENV/.vigil-installed"
fi
echo "==> setup done: $("$VENV/bin/python" --version), $(java -version 2>&1 | head -1)"
