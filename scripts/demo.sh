#!/usr/bin/env bash
# The end-to-end demo behind `make demo`: real Kafka and Redis, three real days of the UCI
# Online Retail dataset (shipped with kassa), the stream job, the daily job, both rankings,
# the HTTP API and the dashboard.
# Each run uses its own topic, consumer group and data folder. Redis is KASSA_REDIS_URL, as for
# every kassa command; the demo only uses an empty database (and marks it as its own) or one
# an earlier demo marked, and only ever empties the latter.
# KASSA_DEMO_SERVE=1 keeps the dashboard serving at the end, with the stream job running and
# simulated checkouts arriving live, until Ctrl-C.
# KASSA_DEMO_SECURE=1 runs it all on a secured local Kafka (`kassa services up --secure`:
# SASL_SSL, SCRAM users, ACLs; docs/security.md) as the 'kassa' user, with an API token.
# KASSA_DEMO_S3=1 keeps the Parquet snapshots in a local S3 server (`kassa services up --s3`:
# S3Proxy, objects in memory; docs/daily.md, Object storage) and prints the DuckDB query that
# reads them.
set -euo pipefail
cd "$(dirname "$0")/.."
kassa=.venv/bin/kassa
run_id=$(date -u +%Y%m%dT%H%M%S)

export KASSA_TOPIC="demo-$run_id"
export KASSA_CONSUMER_GROUP="demo-$run_id"
export KASSA_TIMEZONE=Europe/London
export KASSA_REDIS_URL="${KASSA_REDIS_URL:-redis://127.0.0.1:6379/0}"
export KASSA_API_HOST="${KASSA_API_HOST:-127.0.0.1}"
export KASSA_API_PORT="${KASSA_API_PORT:-8000}"
export KASSA_DATA_DIR="./data/demo-$run_id"
logs="./data/demo-$run_id"  # the logs of the demo's background commands (local, S3 or not)
mkdir -p "$logs"
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

# The secured cluster keeps its own folder and ports: a plaintext one from an earlier
# `make demo` may still run on 9092.
if [[ -n ${KASSA_DEMO_SECURE:-} ]]; then
  up_args+=(--secure)
  export KASSA_STATE_DIR="${KASSA_STATE_DIR:-./.kassa-secure}"
  export KASSA_KAFKA_BOOTSTRAP="${KASSA_KAFKA_BOOTSTRAP:-127.0.0.1:9192}"
  export KASSA_KAFKA_CONTROLLER_PORT="${KASSA_KAFKA_CONTROLLER_PORT:-9193}"
  mkdir -p "$KASSA_STATE_DIR"
  token_file="$KASSA_STATE_DIR/api-token"
  [[ -s $token_file ]] || (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))' >"$token_file")
  export KASSA_API_TOKEN_FILE="$token_file"
fi

if [[ -n ${KASSA_DEMO_S3:-} ]]; then
  up_args+=(--s3)
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Local services: Apache Kafka (KRaft) and redis-server, started unless already up"
$kassa services up "${up_args[@]}"
if [[ -n ${KASSA_DEMO_S3:-} ]]; then
  # the client settings `up --s3` wrote (AWS_* for S3Proxy); the demo's own prefix of the bucket
  s3_env="${KASSA_STATE_DIR:-./.kassa}/s3proxy/client.env"
  set -a; . "$s3_env"; set +a
  export KASSA_DATA_DIR="s3://kassa/demo-$run_id?endpoint_override=${AWS_ENDPOINT_URL#http://}&scheme=http&region=$AWS_REGION"
  echo "snapshots in S3: KASSA_DATA_DIR=$KASSA_DATA_DIR"
fi
if [[ -n ${KASSA_DEMO_SECURE:-} ]]; then
  # the settings `up --secure` wrote: SASL_SSL as the 'kassa' user, its password by file
  set -a; . "$KASSA_STATE_DIR/secure/kassa.env"; set +a
  echo "connected as: $KASSA_KAFKA_SASL_USERNAME over $KASSA_KAFKA_SECURITY_PROTOCOL ($KASSA_KAFKA_SASL_MECHANISM), CA $KASSA_KAFKA_SSL_CA_LOCATION"
fi
RUN_ID="$run_id" .venv/bin/python - <<'PY'
import os, sys
from common.redaction import redacted
from storage.connections import open_redis
from storage.keys import DEMO_DATABASE
url = os.environ["KASSA_REDIS_URL"]
client = open_redis(url)
size = client.dbsize()
if size and not client.exists(DEMO_DATABASE):
    sys.exit(
        f"demo: KASSA_REDIS_URL={redacted(url)} holds {size} keys the demo did not write, and the demo "
        "never empties a database it did not create: point KASSA_REDIS_URL at an empty "
        "database, e.g. KASSA_REDIS_URL=redis://127.0.0.1:6379/14 make demo"
    )
if size:
    client.flushdb()  # marked by an earlier demo run: the demo's own database
    print(f"emptied {redacted(url)}, created by an earlier demo ({DEMO_DATABASE})")
client.set(DEMO_DATABASE, os.environ["RUN_ID"])
print(f"Redis: {redacted(url)} (marked as the demo's own with {DEMO_DATABASE})")
PY
$kassa topics create
$kassa topics describe

step "2. Replay 2010-12-01 .. 2010-12-03 of the dataset shipped with kassa as $day1 .. $day3 into $KASSA_TOPIC"
$kassa produce replay --from 2010-12-01 --to 2010-12-03 --shift-to "$day1" --speed max --quiet

step "3. Stream job: count the backlog live into Redis, exactly once, then stop when idle"
$kassa stream --idle-timeout 5

step "4. Live ranking of $day1 (kassa top --source live)"
$kassa top --source live --day "$day1" -n 5

step "5. Daily job for $day1 and $day2 (Parquet + daily ranking + reconciliation with live)"
$kassa daily backfill --from "$day1" --to "$day2" --quiet

# A day is complete when every partition holds a later record, or has been quiet for
# KASSA_DAILY_IDLE_MARGIN_SECONDS after the day's end (3 days ago is long quiet: step 5's
# days completed that way). With the margin at a year, $day3 needs a later record, and the
# replay has none: the refusal below is real, and --force finalizes the day marked forced.
step "6. With KASSA_DAILY_IDLE_MARGIN_SECONDS=31536000, $day3 has no later record, so the daily job refuses it"
set +e
KASSA_DAILY_IDLE_MARGIN_SECONDS=31536000 $kassa daily run --day "$day3" --quiet
refused=$?
set -e
echo "exit status $refused (3: not complete yet); --force finalizes it, marked forced:"
[[ $refused -eq 3 ]] || { echo "demo: expected exit status 3" >&2; exit 1; }
KASSA_DAILY_IDLE_MARGIN_SECONDS=31536000 $kassa daily run --day "$day3" --force --quiet

step "7. Daily ranking of $day1 (kassa top --source daily --json)"
$kassa top --source daily --day "$day1" -n 3 --json

step "8. Revenue ranking of $day1 .. $day3, the days combined in Redis (kassa top --from --to --by revenue)"
$kassa top --source daily --from "$day1" --to "$day3" --by revenue -n 5

step "9. Parquet snapshots for analysts under $KASSA_DATA_DIR"
if [[ -n ${KASSA_DEMO_S3:-} ]]; then
  S3_ENV="$s3_env" .venv/bin/python - <<'PY'
import importlib.util
import os
from pathlib import Path

import duckdb

from common.settings import load_settings
from storage.location import open_store

store = open_store(load_settings().data_dir)
for path in store.files(""):
    if path.endswith(".parquet"):
        print(store.shown(path))
endpoint = os.environ["AWS_ENDPOINT_URL"].removeprefix("http://")
secret = (
    "CREATE SECRET kassa (TYPE s3, KEY_ID '{key}', SECRET '{secret}', REGION '{region}', "
    f"ENDPOINT '{endpoint}', URL_STYLE 'path', USE_SSL false);"
)
query = f"""SELECT date, sum(units) AS units, sum(revenue) AS revenue
FROM read_parquet('{store.shown()}/daily_item_sales/*/*.parquet', hive_partitioning = true)
GROUP BY date ORDER BY date;"""
print("\nDuckDB reads them with (the key and secret are in " + os.environ["S3_ENV"] + "):\n")
print(secret.format(key="$AWS_ACCESS_KEY_ID", secret="$AWS_SECRET_ACCESS_KEY", region="$AWS_REGION"))
print(query + "\n")
# httpfs from the duckdb-ext-httpfs package (an analyst runs INSTALL httpfs once instead)
spec = importlib.util.find_spec("duckdb_ext")
assert spec is not None and spec.submodule_search_locations
extensions = Path(next(iter(spec.submodule_search_locations))) / "extensions"
con = duckdb.connect(config={"extension_directory": str(extensions)})
con.execute(
    secret.format(
        key=os.environ["AWS_ACCESS_KEY_ID"],
        secret=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ["AWS_REGION"],
    )
)
con.sql(query).show()
PY
else
  find "$KASSA_DATA_DIR" -name '*.parquet' | sort
  .venv/bin/python - <<PY
import polars as pl
items = pl.read_parquet("$KASSA_DATA_DIR/daily_item_sales/", hive_partitioning=True)
print(items.group_by("date").agg(pl.col("units").sum(), pl.col("revenue").sum()).sort("date"))
PY
fi

step "10. HTTP API and dashboard (kassa serve on $KASSA_API_HOST:$KASSA_API_PORT)"
base="http://$KASSA_API_HOST:$KASSA_API_PORT"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
$kassa serve >"$logs/serve.log" 2>&1 &
pids+=($!)
# GET a URL; print the status and the start of the body (what `curl -s URL` shows).
get() {
  .venv/bin/python - "$1" <<'PY'
import os, sys, urllib.error, urllib.request
from pathlib import Path
request = urllib.request.Request(sys.argv[1])
token_file = os.environ.get("KASSA_API_TOKEN_FILE")
if token_file:  # KASSA_DEMO_SECURE: the API asks who you are
    request.add_header("Authorization", f"Bearer {Path(token_file).read_text().strip()}")
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        status, body = response.status, response.read()
except urllib.error.HTTPError as exc:
    status, body = exc.code, exc.read()
print(f"HTTP {status}: {body.decode()[:400]}")
PY
}
for _ in $(seq 150); do
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$logs/serve.log"; exit 1; }
  get "$base/health" >/dev/null 2>&1 && break
  sleep 0.2
done
auth=""
[[ -n ${KASSA_API_TOKEN_FILE:-} ]] && auth="-H \"Authorization: Bearer \$(cat $KASSA_API_TOKEN_FILE)\" "
echo "\$ curl -s $auth'$base/api/rankings?source=live&day=$day1&n=3'"
get "$base/api/rankings?source=live&day=$day1&n=3"
echo "\$ curl -s $base/health"
get "$base/health"

shown_url=$(.venv/bin/python -c 'import os; from common.redaction import redacted; print(redacted(os.environ["KASSA_REDIS_URL"]))')
serve_env="KASSA_REDIS_URL=$shown_url KASSA_DATA_DIR='$KASSA_DATA_DIR' KASSA_TIMEZONE=$KASSA_TIMEZONE"
serve_env="$serve_env KASSA_TOPIC=$KASSA_TOPIC KASSA_CONSUMER_GROUP=$KASSA_CONSUMER_GROUP"
if [[ -n ${KASSA_DEMO_S3:-} ]]; then
  serve_env="set -a; . $s3_env; set +a; $serve_env"
fi
if [[ -n ${KASSA_DEMO_SECURE:-} ]]; then
  serve_env="set -a; . $KASSA_STATE_DIR/secure/kassa.env; set +a; KASSA_API_TOKEN_FILE=$KASSA_API_TOKEN_FILE $serve_env"
fi
if [ "${KASSA_DEMO_SERVE:-0}" = 1 ]; then
  # Today's live board: the stream job keeps counting while simulated checkouts arrive.
  $kassa stream >"$logs/stream.log" 2>&1 &
  pids+=($!)
  $kassa produce synthetic --rate 2 --stores 5 --start "$(date -u +%FT00:00:00+00:00)" --quiet \
    >"$logs/produce.log" 2>&1 &
  pids+=($!)
  printf '\n\033[1mDashboard: %s/\033[0m  (today, live; simulated checkouts arrive while the\n' "$base"
  printf 'stores are open, 07:00-22:00 UTC)\n'
  printf 'The demo days: %s/?day=%s   daily: %s/?source=daily&day=%s\n' "$base" "$day1" "$base" "$day1"
  printf 'API documentation: %s/docs. Serving until Ctrl-C.\n' "$base"
  wait "${pids[0]}"
else
  printf '\n\033[1mDashboard: %s/?day=%s\033[0m  (stopped with the demo; to keep it serving run\n' "$base" "$day1"
  printf 'KASSA_DEMO_SERVE=1 make demo, or serve these results with:\n  %s %s serve)\n' "$serve_env" "$kassa"
  if [[ -n ${KASSA_DEMO_SECURE:-} ]]; then
    printf 'Services keep running: stop them with KASSA_STATE_DIR=%s .venv/bin/kassa services down\n' "$KASSA_STATE_DIR"
  else
    printf 'Services keep running: stop them with .venv/bin/kassa services down\n'
  fi
fi
