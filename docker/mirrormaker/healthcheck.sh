#!/bin/bash
# Health check of the mirror-maker service (docker/compose.yaml): healthy while MirrorMaker 2's heartbeats keep
# arriving in the DR cluster, i.e. the end offsets of its `heartbeats` topic grew since the previous check.
# Usage: healthcheck.sh DR_BOOTSTRAP_SERVERS   (KAFKA_BIN: where the Kafka scripts are, default /opt/kafka/bin)
set -u
bootstrap=${1:?usage: healthcheck.sh DR_BOOTSTRAP_SERVERS}
state=${MM2_HEALTH_STATE:-/tmp/mm2-heartbeats-seen}
total=$("${KAFKA_BIN:-/opt/kafka/bin}"/kafka-get-offsets.sh --bootstrap-server "$bootstrap" --topic heartbeats 2>/dev/null \
        | awk -F: '/^heartbeats:[0-9]+:[0-9]+$/ { sum += $3 } END { print sum + 0 }')
previous=$(cat "$state" 2>/dev/null || echo 0)
echo "$total" > "$state"
if [ "$total" -le 0 ]; then
    echo "unhealthy: no heartbeats topic with records in $bootstrap yet" >&2
    exit 1
fi
if [ "$total" -le "$previous" ]; then
    echo "unhealthy: no heartbeat since the previous check ($total records)" >&2
    exit 1
fi
echo "healthy: $total heartbeats"
