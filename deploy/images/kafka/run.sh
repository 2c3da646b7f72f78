#!/bin/sh
# Writes server.properties from the environment as the official image does (KAFKA_FOO_BAR ->
# foo.bar; KAFKA_HEAP_OPTS and the like are JVM settings, not properties), formats the log
# directory once with CLUSTER_ID, then runs the broker in the foreground.
set -eu
: "${CLUSTER_ID:?CLUSTER_ID is required}"
props=/opt/kafka/config/server.properties
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
  java -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format --config "$props" \
    --cluster-id="$CLUSTER_ID" --ignore-formatted
fi
exec java ${KAFKA_HEAP_OPTS:--Xmx512m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC} ${KAFKA_OPTS:-} \
  -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties -Dkafka.logs.dir=/tmp -cp '/opt/kafka/libs/*' kafka.Kafka "$props"
