#!/usr/bin/env bash
# Install the programs that the local Kafka broker, the demo and the tests run, then fill the
# Kafka jar cache. Safe to run again: each step is skipped when its result is already there.
# Needs root only when a Debian package is missing. Python packages are not installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt_updated=false

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing Debian packages: $*; run this script as root" >&2
        exit 1
    fi
    if [ "$apt_updated" = false ]; then
        apt-get update -qq
        apt_updated=true
    fi
    echo "install-deps: installing $*"
    apt-get install -y -qq --no-install-recommends "$@"
}

package_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# Java runs the broker and Maven downloads its jars; keytool (in the JRE package) and openssl
# make the certificates for the TLS listeners.
missing_tools=()
command -v java >/dev/null || missing_tools+=(openjdk-17-jre-headless)
command -v keytool >/dev/null || missing_tools+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing_tools+=(maven)
command -v openssl >/dev/null || missing_tools+=(openssl)
# A C compiler builds batchalert's compiled kernels ahead of time (see scripts/setup).
command -v gcc >/dev/null || missing_tools+=(gcc libc6-dev)
if [ "${#missing_tools[@]}" -gt 0 ]; then
    # The JRE package can be listed twice above; sort -u keeps one of each.
    mapfile -t missing_tools < <(printf '%s\n' "${missing_tools[@]}" | sort -u)
    apt_install "${missing_tools[@]}"
fi

missing_packages=()
for package in kcat prometheus-alertmanager prometheus-pushgateway; do
    package_installed "$package" || missing_packages+=("$package")
done
if [ "${#missing_packages[@]}" -gt 0 ]; then
    apt_install "${missing_packages[@]}"
fi

# The folder of the jars goes to stderr, so that the demo and test output start clean.
python3 -m scripts.kafka_local fetch >&2
