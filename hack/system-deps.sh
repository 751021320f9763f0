#!/usr/bin/env bash
# Install the machine packages the test bed needs, only when they are missing: a JDK and Maven
# (Kafka's jars), PostgreSQL server + pgbench, Python's venv module, wrk (the runtime benchmark's load generator) (all from Debian), and check
# that Go is recent enough to build the pinned tools (this machine kind ships Go; Debian's own
# golang-go is too old for Kubernetes 1.34).
set -euo pipefail

GO_MIN_MINOR=22  # go >= 1.22 fetches the toolchain a module asks for through the module proxy

missing=()
command -v go >/dev/null || missing+=(golang-go)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || command -v pgbench >/dev/null \
  || missing+=(postgresql-contrib)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v wrk >/dev/null || missing+=(wrk)  # bench/runtime's load generator

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
if [ "${minor:-0}" -lt "$GO_MIN_MINOR" ]; then
  echo "Go $(go env GOVERSION) is too old: the tool builds need go1.${GO_MIN_MINOR} or newer" >&2
  echo "(it then downloads the exact toolchain each module requires through the module proxy)." >&2
  exit 1
fi
