#!/usr/bin/env bash
# Installs the real third-party peers the full test suite runs against:
# Debian's mosquitto broker, python3-paho-mqtt and python3-pymodbus; for the
# editor's end-to-end tests Debian's chromium with fonts-dejavu-core, Node.js
# (>= 18, with npm; Debian 12's nodejs and npm when node is missing) and the
# playwright-core pinned in web/e2e/package-lock.json (npm ci, no browser
# download). When a system peer is missing and we run as root, it is
# installed with apt-get; otherwise the script fails naming what to install.
# The npm packages need no root: they go to web/e2e/node_modules whenever it
# is missing or older than the lock file.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"

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
# Modbus cross-checks: mbpoll (libmodbus) as a second client, socat for the
# pseudo-terminal pairs that carry RTU and ASCII frames between the bus and
# pymodbus's serial servers.
command -v mbpoll >/dev/null 2>&1 || need+=(mbpoll)
command -v socat >/dev/null 2>&1 || need+=(socat)
# Debian's chromium (the tests launch /usr/bin/chromium, not a downloaded
# browser) renders the editor; DejaVu gives it text that measures the same
# on every machine.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
# Node.js runs the test scripts and playwright-core. A node already on PATH
# (a newer one, say) is kept; Debian's is installed only when there is none.
if ! command -v node >/dev/null 2>&1; then
  need+=(nodejs npm)
elif ! command -v npm >/dev/null 2>&1; then
  need+=(npm)
fi
# curl posts to the http-in connector in its tests, as a device would.
command -v curl >/dev/null 2>&1 || need+=(curl)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "peers: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends ca-certificates "${need[@]}" >/dev/null
  else
    echo "peers: missing ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

# playwright-core 1.61 (the version the lock file pins; it drives Debian's
# chromium) runs on Node.js 18 or newer, Debian 12's own included.
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 18 ]; then
  echo "peers: Node.js $(node --version) is too old for web/e2e (playwright-core needs Node.js >= 18); install Node.js 18 or newer" >&2
  exit 1
fi

e2e="$root/web/e2e"
stamp="$e2e/node_modules/.package-lock.json"
if [ ! -f "$e2e/node_modules/playwright-core/package.json" ] || [ ! -f "$stamp" ] || [ "$e2e/package-lock.json" -nt "$stamp" ]; then
  echo "peers: npm ci in web/e2e" >&2
  (cd "$e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error </dev/null)
  touch "$stamp"
fi

# Node-RED 4 (the version bench/nodered/package-lock.json pins) runs the
# flow benchmarks' Node-RED row beside tbflow in make bench.
nrb="$root/bench/nodered"
stamp="$nrb/node_modules/.package-lock.json"
if [ ! -f "$nrb/node_modules/node-red/package.json" ] || [ ! -f "$stamp" ] || [ "$nrb/package-lock.json" -nt "$stamp" ]; then
  echo "peers: npm ci in bench/nodered" >&2
  (cd "$nrb" && npm ci --no-audit --no-fund --loglevel=error </dev/null)
  touch "$stamp"
fi
