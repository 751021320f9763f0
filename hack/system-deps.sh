#!/usr/bin/env bash
# Install the machine packages the test bed needs, only when they are missing:
# Go (tool builds), a JDK and Maven (Kafka's jars), PostgreSQL server + pgbench (Debian).
set -euo pipefail

missing=()
command -v go >/dev/null || missing+=(golang-go)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || command -v pgbench >/dev/null || missing+=(postgresql-contrib)
command -v openssl >/dev/null || missing+=(openssl)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
