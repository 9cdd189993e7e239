#!/usr/bin/env bash
# Make sure the programs the local services and the tests need are installed: Java 17+,
# Maven, redis-server, docker-compose (the tests check docker-compose.yml with it; no
# Docker engine needed) and, for the dashboard's browser test, Debian's chromium with
# its chromedriver, and Debian's prometheus (its promtool tests the alert rules; the operating
# tests start the server).
# As root on Debian/Ubuntu the missing ones are installed with apt-get; elsewhere this script
# names what is missing and the command that installs it, and fails.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=("java:openjdk-17-jre-headless")
command -v mvn >/dev/null 2>&1 || missing+=("mvn:maven")
command -v redis-server >/dev/null 2>&1 || missing+=("redis-server:redis-server")
command -v docker-compose >/dev/null 2>&1 || missing+=("docker-compose:docker-compose")
command -v chromium >/dev/null 2>&1 || missing+=("chromium:chromium")
command -v chromedriver >/dev/null 2>&1 || missing+=("chromedriver:chromium-driver")
command -v promtool >/dev/null 2>&1 || missing+=("promtool:prometheus")
[ ${#missing[@]} -eq 0 ] && exit 0

packages=()
for entry in "${missing[@]}"; do packages+=("${entry#*:}"); done

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${packages[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  exit 0
fi

for entry in "${missing[@]}"; do
  echo "kassa: '${entry%%:*}' is not installed; install it with: sudo apt-get install ${entry#*:}" >&2
done
echo "kassa: on other systems install Java 17+, Maven, Redis 7, docker-compose, Chromium" \
  "with chromedriver and Prometheus 2.42+ (promtool) with your package manager" >&2
exit 1
