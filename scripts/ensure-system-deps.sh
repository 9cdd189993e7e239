#!/usr/bin/env bash
# Make sure the programs the local services need are installed: Java 17+, Maven, redis-server,
# and, for the dashboard's browser test, Debian's chromium with its chromedriver.
# As root on Debian/Ubuntu the missing ones are installed with apt-get; elsewhere this script
# names what is missing and the command that installs it, and fails.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=("java:openjdk-17-jre-headless")
command -v mvn >/dev/null 2>&1 || missing+=("mvn:maven")
command -v redis-server >/dev/null 2>&1 || missing+=("redis-server:redis-server")
command -v chromium >/dev/null 2>&1 || missing+=("chromium:chromium")
command -v chromedriver >/dev/null 2>&1 || missing+=("chromedriver:chromium-driver")
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
echo "kassa: on other systems install Java 17+, Maven, Redis 7 and Chromium with chromedriver" \
  "with your package manager" >&2
exit 1
