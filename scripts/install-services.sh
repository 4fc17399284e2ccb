#!/usr/bin/env bash
# Install the servers the test suite starts (PostgreSQL, Redis) when they are missing.
# On Debian/Ubuntu as root it uses apt-get; elsewhere it says what is missing and goes on:
# the tests then skip with a reason (or fail under CONVEYOR_REQUIRE_SERVICES=1).
set -euo pipefail

need=()
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
  need+=(postgresql)
fi
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || need+=(redis-server)

# promtool (checks the /metrics output) comes from Debian's prometheus package; only the
# binary is unpacked into .services/, so no Prometheus server is installed or started.
PROMTOOL_DIR="$(cd "$(dirname "$0")/.." && pwd)/.services/prometheus"
install_promtool() {
  command -v promtool >/dev/null && return 0
  [ -x "$PROMTOOL_DIR/usr/bin/promtool" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "unpacking promtool from Debian's prometheus package into .services/"
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1) \
      || { apt-get update -qq && (cd "$tmp" && apt-get download -qq prometheus >/dev/null); }
    mkdir -p "$PROMTOOL_DIR"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$PROMTOOL_DIR"
    rm -rf "$tmp"
  else
    echo "note: promtool not found; the /metrics format test will be skipped" >&2
  fi
}

if [ ${#need[@]} -eq 0 ]; then
  install_promtool
  exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${need[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts the packaged services; the tests run their own throwaway servers on
  # 127.0.0.1 instead, so stop the packaged ones to keep ports and memory free.
  if command -v service >/dev/null; then
    service postgresql stop >/dev/null 2>&1 || true
    service redis-server stop >/dev/null 2>&1 || true
  fi
else
  echo "note: ${need[*]} not installed and this is not Debian as root;" \
       "tests that need them will be skipped (install them to run everything)" >&2
fi
install_promtool
