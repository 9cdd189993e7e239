#!/usr/bin/env bash
# The end-to-end demo behind `make demo`: real Kafka and Redis, three real days of the UCI
# Online Retail dataset, the stream job, the daily job and both rankings.
# Each run uses its own topic, consumer group and data folder; Redis database 14 is the demo's.
set -euo pipefail
cd "$(dirname "$0")/.."
kassa=.venv/bin/kassa
run_id=$(date -u +%Y%m%dT%H%M%S)

export KASSA_TOPIC="demo-$run_id"
export KASSA_CONSUMER_GROUP="demo-$run_id"
export KASSA_TIMEZONE=Europe/London
export KASSA_REDIS_URL="${KASSA_DEMO_REDIS_URL:-redis://127.0.0.1:6379/14}"
export KASSA_DATA_DIR="./data/demo-$run_id"
# Real days 2010-12-01..03, moved to recent days so live keys are within their retention.
day1=$(date -u -d '5 days ago' +%F)
day2=$(date -u -d '4 days ago' +%F)
day3=$(date -u -d '3 days ago' +%F)

# KASSA_DEMO_BROKERS=3 make demo: a three-node cluster (or the one `services up --brokers 3`
# left running) with replicated topics: replication factor 3, min ISR 2.
up_args=()
if [[ -n ${KASSA_DEMO_BROKERS:-} ]]; then
  up_args=(--brokers "$KASSA_DEMO_BROKERS")
  export KASSA_REPLICATION_FACTOR=${KASSA_REPLICATION_FACTOR:-$((KASSA_DEMO_BROKERS < 3 ? KASSA_DEMO_BROKERS : 3))}
  export KASSA_MIN_INSYNC_REPLICAS=${KASSA_MIN_INSYNC_REPLICAS:-$((KASSA_DEMO_BROKERS < 3 ? 1 : 2))}
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Local services: Apache Kafka (KRaft) and redis-server, started unless already up"
$kassa services up "${up_args[@]}"
.venv/bin/python -c 'import os, redis; redis.Redis.from_url(os.environ["KASSA_REDIS_URL"]).flushdb()'
$kassa topics create
$kassa topics describe

step "2. Replay 2010-12-01 .. 2010-12-03 of the real dataset as $day1 .. $day3 into $KASSA_TOPIC"
$kassa produce replay --from 2010-12-01 --to 2010-12-03 --shift-to "$day1" --speed max --quiet

step "3. Stream job: count the backlog live into Redis, exactly once, then stop when idle"
$kassa stream --idle-timeout 5

step "4. Live ranking of $day1 (kassa top --source live)"
$kassa top --source live --day "$day1" -n 5

step "5. Daily job for $day1 and $day2 (Parquet + daily ranking + reconciliation with live)"
$kassa daily backfill --from "$day1" --to "$day2" --quiet

step "6. $day3 has no later records yet, so the daily job refuses it (exit status $(
  $kassa daily run --day "$day3" --quiet >/dev/null 2>&1; echo $?)); --force overrides"
$kassa daily run --day "$day3" --force --quiet

step "7. Daily ranking of $day1 (kassa top --source daily --json)"
$kassa top --source daily --day "$day1" -n 3 --json

step "8. Parquet snapshots for analysts under $KASSA_DATA_DIR"
find "$KASSA_DATA_DIR" -name '*.parquet' | sort
.venv/bin/python - <<PY
import polars as pl
items = pl.read_parquet("$KASSA_DATA_DIR/daily_item_sales/", hive_partitioning=True)
print(items.group_by("date").agg(pl.col("units").sum(), pl.col("revenue").sum()).sort("date"))
PY

printf '\nDemo done. Services keep running: stop them with .venv/bin/kassa services down\n'
