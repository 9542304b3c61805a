#!/usr/bin/env bash
# Install the Apache Kafka broker the Kafka source's tests and benchmark start (KRaft, single node):
# kafka_2.13 and its runtime dependencies, from Maven Central with Maven (scripts/kafka/pom.xml), into
#   ${DANUBE_KAFKA_HOME:-$HOME/.cache/danube-connect/kafka-<version>}/libs
# Idempotent: a complete install (marker file written last) is left alone, so a second run costs nothing.
# Needs java (17+) and mvn; prints what is missing and exits 1 without them.
# The tests find the install through danube_source_kafka.testing.kafka_home() (same default, same variable).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
POM=scripts/kafka/pom.xml
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
home=${DANUBE_KAFKA_HOME:-$HOME/.cache/danube-connect/kafka-$version}
marker="$home/installed"
# The marker holds the pom's checksum: editing the pom (a new version, another jar) installs again.
want=$(sha256sum "$POM" | cut -d' ' -f1)
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
    exit 0
fi
for tool in java mvn; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "install_kafka: $tool is missing (apt-get install openjdk-17-jre-headless maven)" >&2
        exit 1
    }
done
echo "install_kafka: fetching Apache Kafka $version jars into $home/libs (Maven Central)" >&2
rm -rf "$home/libs.tmp"
mkdir -p "$home"
mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$home/libs.tmp" >"$home/install.log" 2>&1 || {
    tail -30 "$home/install.log" >&2
    echo "install_kafka: Maven could not fetch the Kafka jars (log: $home/install.log)" >&2
    exit 1
}
rm -rf "$home/libs"
mv "$home/libs.tmp" "$home/libs"
echo "$want" >"$marker"
echo "install_kafka: Apache Kafka $version installed in $home" >&2
