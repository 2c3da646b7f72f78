#!/bin/sh
# Writes server.properties from the environment as the official image does (KAFKA_FOO_BAR ->
# foo.bar; KAFKA_HEAP_OPTS and the like are JVM settings, not properties), formats the log
# directory once with CLUSTER_ID, then runs the broker.
#
# SCRAM: with LOUPE_KAFKA_SCRAM_USERNAME and LOUPE_KAFKA_SCRAM_PASSWORD set, the user's
# SCRAM-SHA-512 credential is written (created or replaced) through LOUPE_KAFKA_ADMIN_BOOTSTRAP,
# a listener that needs no credentials (the chart's: PLAINTEXT on 127.0.0.1, reachable only
# inside the pod), every time the broker starts: a volume formatted before auth existed gets it,
# and a changed password takes effect. Only then is LOUPE_KAFKA_READY_FILE created (the chart's
# readiness probe tests it), so no client is sent to a broker that would refuse it.
#
# The chart mounts this file from a ConfigMap and runs it in place of the image's entrypoint, so
# the image only needs sh, java and Kafka's jars in $LOUPE_KAFKA_HOME/libs: Loupe's image
# (deploy/images/kafka, which also carries this file) and the official apache/kafka one alike.
# Paths: LOUPE_KAFKA_HOME (default /opt/kafka), LOUPE_KAFKA_CONFIG_DIR (where server.properties
# is written; default $LOUPE_KAFKA_HOME/config), LOUPE_KAFKA_LOG4J (default
# $LOUPE_KAFKA_HOME/log4j2.properties). Not KAFKA_*: those would become broker properties.
set -eu
: "${CLUSTER_ID:?CLUSTER_ID is required}"
home=${LOUPE_KAFKA_HOME:-/opt/kafka}
confdir=${LOUPE_KAFKA_CONFIG_DIR:-$home/config}
ready=${LOUPE_KAFKA_READY_FILE:-/tmp/kafka-ready}
user=${LOUPE_KAFKA_SCRAM_USERNAME:-}
password=${LOUPE_KAFKA_SCRAM_PASSWORD:-}
log4j="-Dlog4j2.configurationFile=${LOUPE_KAFKA_LOG4J:-$home/log4j2.properties}"
cp="$home/libs/*"
props=$confdir/server.properties
# emptyDir /tmp outlives a container restart: a marker from the last run must not make this
# one ready before its credential is written.
rm -f "$ready"
umask 077
mkdir -p "$confdir"
: > "$props"
env | sort | while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_OPTS|KAFKA_LOG4J_OPTS) continue ;;
    KAFKA_*)
      key=$(printf '%s' "${name#KAFKA_}" | tr 'A-Z' 'a-z' | sed 's/___/-/g; s/__/_/g; s/_/./g')
      printf '%s=%s\n' "$key" "$value" >> "$props" ;;
  esac
done
logdirs=$(sed -n 's/^log\.dirs=//p' "$props")
first=${logdirs%%,*}
if [ -n "$first" ] && [ ! -f "$first/meta.properties" ]; then
  java "$log4j" -cp "$cp" kafka.tools.StorageTool format --config "$props" \
    --cluster-id="$CLUSTER_ID" --ignore-formatted
fi
if [ -z "$user" ]; then
  touch "$ready"
  # shellcheck disable=SC2086 # the *_OPTS are lists of JVM flags
  exec java ${KAFKA_HEAP_OPTS:--Xmx512m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC} ${KAFKA_OPTS:-} \
    "$log4j" -Dkafka.logs.dir=/tmp -cp "$cp" kafka.Kafka "$props"
fi
: "${LOUPE_KAFKA_SCRAM_PASSWORD:?LOUPE_KAFKA_SCRAM_PASSWORD is required with LOUPE_KAFKA_SCRAM_USERNAME}"
: "${LOUPE_KAFKA_ADMIN_BOOTSTRAP:?LOUPE_KAFKA_ADMIN_BOOTSTRAP (a listener without auth) is required with LOUPE_KAFKA_SCRAM_USERNAME}"
case "$password" in
  # ConfigCommand's [password=...] syntax has no escapes for these.
  *[],=[\\]*) echo "LOUPE_KAFKA_SCRAM_PASSWORD must not contain , [ ] = or \\" >&2; exit 2 ;;
esac

# The broker runs in the background so that the credential can be written once it listens;
# this shell (PID 1 in the pod) passes SIGTERM on and exits with the broker's status.
# shellcheck disable=SC2086
java ${KAFKA_HEAP_OPTS:--Xmx512m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC} ${KAFKA_OPTS:-} \
  "$log4j" -Dkafka.logs.dir=/tmp -cp "$cp" kafka.Kafka "$props" &
broker=$!
trap 'kill -TERM "$broker" 2>/dev/null || true' TERM INT

# The password is in this command line, visible only inside the pod, as the environment is.
# (--add-config-file would hide it, but Kafka 4.1's ConfigCommand rejects SCRAM entries read
# from a file: "Invalid credential property SCRAM_SHA_512".)
until java "$log4j" -cp "$cp" kafka.admin.ConfigCommand --bootstrap-server "$LOUPE_KAFKA_ADMIN_BOOTSTRAP" \
    --alter --entity-type users --entity-name "$user" --add-config "SCRAM-SHA-512=[password=$password]" >/dev/null; do
  if ! kill -0 "$broker" 2>/dev/null; then
    break
  fi
  echo "run.sh: broker not ready for the SCRAM credential of $user yet; retrying" >&2
  sleep 2
done
if kill -0 "$broker" 2>/dev/null; then
  echo "run.sh: SCRAM-SHA-512 credential of $user written" >&2
  touch "$ready"
fi
set +e
wait "$broker"
status=$?
# A trapped signal interrupts the first wait; this one collects the broker's own status.
if kill -0 "$broker" 2>/dev/null; then
  wait "$broker"
  status=$?
fi
exit "$status"
