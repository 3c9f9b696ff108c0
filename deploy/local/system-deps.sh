#!/usr/bin/env bash
# Checks the machine's tools that the local stack needs and installs missing Debian packages when root.
set -euo pipefail
missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v go >/dev/null || missing+=(golang-go)
command -v kcat >/dev/null || missing+=(kcat)
command -v curl >/dev/null || missing+=(curl)
command -v patch >/dev/null || missing+=(patch)
# headless Chromium and its WebDriver, for the browser test of the pop-up widget
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "[system-deps] installing: ${missing[*]}" >&2
SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
