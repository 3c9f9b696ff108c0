#!/usr/bin/env bash
# Checks the machine's tools and installs missing Debian packages when root (or with sudo).
#   system-deps.sh run    what `make run` needs: Java and Maven for Kafka, Go for FerretDB, curl, patch
#   system-deps.sh test   and what only the tests use: kcat, headless Chromium with its WebDriver,
#                         promtool (Debian's prometheus package) for the alerting rules
set -euo pipefail
mode="${1:-run}"
missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v go >/dev/null || missing+=(golang-go)
command -v curl >/dev/null || missing+=(curl)
command -v patch >/dev/null || missing+=(patch)
if [[ "$mode" == test ]]; then
  command -v kcat >/dev/null || missing+=(kcat)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  command -v promtool >/dev/null || missing+=(prometheus)
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "[system-deps] installing: ${missing[*]}" >&2
SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
