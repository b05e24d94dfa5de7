#!/usr/bin/env bash
# Installs the real third-party peers the full test suite runs against:
# Debian's mosquitto broker, python3-paho-mqtt and python3-pymodbus. When a peer is missing and we run as
# root, it is installed with apt-get; otherwise the script fails naming what
# to install.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# Debian's own python3 (not another one on PATH) with paho-mqtt replays the
# official Python SDK's calls against tbsim.
/usr/bin/python3 -c 'import paho.mqtt.client' >/dev/null 2>&1 || need+=(python3 python3-paho-mqtt)
# Debian's pymodbus is the Modbus server nobody here wrote, for modbus/'s
# read suite; its server module imports serial and serial_asyncio.
/usr/bin/python3 -c 'import pymodbus.server, serial' >/dev/null 2>&1 || need+=(python3 python3-pymodbus python3-serial python3-serial-asyncio)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "peers: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends ca-certificates "${need[@]}" >/dev/null
  exit 0
fi

echo "peers: missing ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
exit 1
