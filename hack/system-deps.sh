#!/usr/bin/env bash
# Install the machine packages the test bed needs, only when they are missing: a JDK and Maven
# (Kafka's jars), a JDK >= 21 (Strimzi's CRD generator, hack/crds.py), PostgreSQL server + pgbench,
# Redis (velocity checks and rate limits, tests/fixtures/redis.py), Python's venv module (all from
# Debian) and, for `make bench` only (PAYDECK_BENCH=1), wrk; and check
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
command -v redis-server >/dev/null || missing+=(redis-server)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ "${PAYDECK_BENCH:-}" = 1 ]; then  # make bench: bench/runtime's load generator
  command -v wrk >/dev/null || missing+=(wrk)
fi

JAVA_MIN=21  # Strimzi's crd-generator is built for Java 21 (class version 65)
java_major() {  # the feature release of a java binary, or 0
  "$1" -XshowSettings:properties -version 2>&1 \
    | sed -nE 's/^ *java\.specification\.version = (1\.)?([0-9]+).*/\2/p' | head -n1 | grep . || echo 0
}
have_new_java() {  # same places as hack/crds.py find_java: JAVA_HOME, alternatives, /usr/lib/jvm
  local j
  for j in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} \
           $(update-alternatives --list java 2>/dev/null) /usr/lib/jvm/*/bin/java; do
    [ -x "$j" ] && [ "$(java_major "$j")" -ge "$JAVA_MIN" ] && return 0
  done
  return 1
}
if ! have_new_java; then
  # The newest openjdk-N-jre-headless (N >= 21) this machine's apt sources offer, if any.
  new_jdk=$(apt-cache search --names-only '^openjdk-[0-9]+-jre-headless$' 2>/dev/null \
    | sed -nE 's/^openjdk-([0-9]+)-jre-headless .*/\1/p' | sort -n \
    | while read -r n; do
        if [ "$n" -ge "$JAVA_MIN" ] \
           && apt-cache policy "openjdk-$n-jre-headless" | grep -q 'Candidate: [0-9]'; then
          echo "openjdk-$n-jre-headless"
        fi
      done | tail -n1)
  if [ -n "$new_jdk" ]; then
    missing+=("$new_jdk")
  else
    echo "warning: no JDK >= $JAVA_MIN here and apt offers none (Debian 12 ships 17): the" >&2
    echo "Strimzi KafkaTopic CRD of the e2e tests cannot be generated until one is installed" >&2
    echo "(JAVA_HOME or /usr/lib/jvm/*)." >&2
  fi
fi

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
