#!/usr/bin/env bash
# Install the Debian packages Pantau runs on (mosquitto, influxdb) and tests with (mosquitto
# clients; prometheus for the dashboards' queries; chromium for the console's browser tests)
# when they are missing.
# Needs root, or sudo. Services are never enabled: Pantau starts its own processes.
set -euo pipefail
missing=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
command -v influxd >/dev/null 2>&1 || [ -x /usr/bin/influxd ] || missing+=(influxdb)
# Prometheus: only the tests use it (the Pipeline dashboard's queries, tests/test_dashboard_queries.py).
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# policy-rc.d keeps the packages' own services from starting where init scripts would run.
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
