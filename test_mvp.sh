#!/usr/bin/env bash
# Smoke test of a running stack. See --help.
set -u

usage() {
  cat <<'EOF'
Usage: ./test_mvp.sh [BASE_URL] [--flower URL] [--streamlit URL] [--timeout SECONDS]

Exercises a running traffic prediction stack and prints PASS or FAIL for each check, with what it saw:
  health             GET /health answers 200 with status "ok"
  api key            with API_KEY set: GET /api/predictions answers 401 without it and 200 with it, and
                     GET /api/keys/me names it; unset: the API answers without a key (AUTH_ENABLED=false)
  model info         GET /api/models lists the eclo model with a version and its vocabularies
  single prediction  POST /api/predict/eclo with the classic example answers an ECLO >= 0, p_severe in [0, 1],
                     its relative risk and a risk level
  prediction record  GET /api/predictions.csv lists that prediction (found by this run's request id)
  invalid input      POST /api/predict/eclo with an unknown weather answers 422 naming the field
  batch of 100       POST /api/predict/eclo/batch with 100 rows is 202, then polled to "success" with 100 results
  101 rows           a batch of 101 rows answers 413 too_large
  unknown batch      GET /api/predict/batch/<unknown>/results answers 404
  ingest readings    POST /api/traffic/readings with 12 readings (flat and nested) of the first registered sensor
                     and 1 bad one: the 12 are stored (duplicates on a re-run within the minute)
  rejected reading   the bad reading (speed 500 mph) is refused with index 12 and a message naming speed_mph
  current state      GET /api/traffic/current shows that sensor's newest reading and its level
  congestion         POST /api/predict/congestion {sensor_id} answers speeds 15/30/60 minutes ahead from the
                     stored readings
  congestion batch   POST /api/predict/congestion/batch with 5 items is polled to "success"
  dataset upload     POST /api/datasets with a 3-row CP949 file in the Dacon layout (one row with hour 25) answers
                     201: 3 rows, 2 valid, encoding cp949, layout dacon
  dataset scoring    POST /api/datasets/<id>/predict, polled to "success"; the results CSV holds the 3 rows in
                     order, 2 predicted and the bad one with its error
  dataset delete     DELETE /api/datasets/<id> answers 204
  mcp tools          POST /mcp (the MCP server, streamable HTTP) lists the tools, predict_eclo among them, with the key
  assistant no key   POST /api/assistant/conversations answers 201; asking in it without X-Anthropic-API-Key (on a
                     server without ANTHROPIC_API_KEY) answers 400 naming the header and the setting
  metrics            GET /metrics counts the prediction requests this script just made
  flower             the Flower URL answers (only when --flower or FLOWER_URL is given)
  streamlit          the Streamlit URL answers (only when --streamlit or STREAMLIT_URL is given)

BASE_URL defaults to $API_URL, else http://127.0.0.1:8000. API_KEY (the line `API key: ...` that `make run`
prints; scopes predict, read and admin) is sent as `Authorization: Bearer`. FLOWER_AUTH=user:password is sent to
Flower.
The exit status is the number of failed checks (0: all passed). Needs bash, curl and python3.
EOF
}

BASE_URL="${API_URL:-http://127.0.0.1:8000}"
FLOWER="${FLOWER_URL:-}"
STREAMLIT="${STREAMLIT_URL:-}"
TIMEOUT=60
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --flower) FLOWER="$2"; shift 2 ;;
    --streamlit) STREAMLIT="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    -*) echo "unknown option: $1 (see --help)" >&2; exit 64 ;;
    *) BASE_URL="$1"; shift ;;
  esac
done
BASE_URL="${BASE_URL%/}"
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "test_mvp.sh needs $tool" >&2; exit 64; }
done

FAILURES=0
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RUN_ID="mvp-$$-$(date +%s)"
KEY_HEADER=()
[ -n "${API_KEY:-}" ] && KEY_HEADER=(-H "Authorization: Bearer $API_KEY")

pass() { printf 'PASS  %-18s %s\n' "$1" "$2"; }
fail() { printf 'FAIL  %-18s %s\n' "$1" "$2"; FAILURES=$((FAILURES + 1)); }

# poll_batch NAME POLL_URL EXPECTED_RESULTS: polls to a final state, then PASS/FAIL
poll_batch() {
  local name="$1" poll="$2" expected="$3" deadline state=""
  deadline=$(( $(date +%s) + TIMEOUT ))
  while [ "$(date +%s)" -le "$deadline" ]; do
    request GET "$poll"
    state=$(json 'b["status"]')
    case "$state" in success|partial|failure) break ;; esac
    sleep 0.2
  done
  if [ "$state" = success ] && [ "$(json 'len(b["results"])')" = "$expected" ]; then
    pass "$name" "success, $expected results, progress $(json 'b["progress"]')"
  else
    fail "$name" "after ${TIMEOUT}s: status '$state': $(seen)"
  fi
}

# request METHOD PATH [BODY_FILE] -> sets STATUS, body in $WORK/body
request() {
  local method="$1" path="$2" data="${3:-}"
  local args=(-s -o "$WORK/body" -w '%{http_code}' -X "$method" -H "X-Request-ID: $RUN_ID" --max-time 30
              "${KEY_HEADER[@]}")
  [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary "@$data")
  STATUS=$(curl "${args[@]}" "$BASE_URL$path" 2>/dev/null) || STATUS="000"
}

# json EXPR: evaluate a Python expression on the last body (bound to `b`); prints the result
json() {
  python3 -c "import json,sys; b=json.load(open(sys.argv[1])); print($1)" "$WORK/body" 2>/dev/null
}

seen() { head -c 300 "$WORK/body" 2>/dev/null | tr '\n' ' '; }

python3 - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
row = {"weather": "맑음", "road_surface": "건조", "road_type": "교차로", "accident_type": "차대차", "time_period": "낮",
       "district": "중구", "day_of_week": "월요일", "accident_hour": 14, "accident_year": 2024, "accident_month": 12,
       "accident_day": 10}
json.dump(row, open(f"{work}/classic.json", "w"), ensure_ascii=False)
json.dump({**row, "weather": "폭풍"}, open(f"{work}/invalid.json", "w"), ensure_ascii=False)
rows = [{**row, "accident_hour": i % 24, "accident_day": 1 + i % 28} for i in range(101)]
json.dump({"items": rows[:100]}, open(f"{work}/batch100.json", "w"), ensure_ascii=False)
json.dump({"items": rows}, open(f"{work}/batch101.json", "w"), ensure_ascii=False)
EOF

metric_value() {  # sum of http_requests_total samples for POST /api/predict/{model} with status 200
  curl -s --max-time 10 "${KEY_HEADER[@]}" "$BASE_URL/metrics" 2>/dev/null | python3 -c '
import sys
total = 0.0
for line in sys.stdin:
    if line.startswith("http_requests_total{") and "route=\"/api/predict/{model}\"" in line \
            and "status=\"200\"" in line and "method=\"POST\"" in line:
        total += float(line.rsplit(" ", 1)[1])
print(int(total))'
}

echo "smoke test of $BASE_URL"
METRIC_BEFORE=$(metric_value)

request GET /health
if [ "$STATUS" = 200 ] && [ "$(json 'b["status"]')" = ok ]; then
  pass health "200, components: $(json '", ".join(k + "=" + v["status"] for k, v in b["components"].items())')"
else
  fail health "status $STATUS: $(seen)"
fi

KEYLESS=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$BASE_URL/api/predictions" 2>/dev/null) || KEYLESS=000
if [ -n "${API_KEY:-}" ]; then
  request GET /api/predictions
  LISTING=$STATUS
  request GET /api/keys/me
  if [ "$KEYLESS" = 401 ] && [ "$LISTING" = 200 ] && [ "$STATUS" = 200 ]; then
    pass "api key" "401 without a key, 200 with API_KEY: key $(json 'b["name"]') ($(json 'b["key_id"]')), scopes $(json '",".join(b["scopes"])')"
  else
    fail "api key" "without a key: $KEYLESS (401 expected); with API_KEY: listing $LISTING, /api/keys/me $STATUS: $(seen)"
  fi
elif [ "$KEYLESS" = 200 ]; then
  pass "api key" "none needed: the API runs with AUTH_ENABLED=false"
else
  fail "api key" "GET /api/predictions without a key answered $KEYLESS: set API_KEY (make run prints one)"
fi

request GET /api/models
VERSION=$(json 'next(m["version"] for m in b["models"] if m["name"] == "eclo")')
if [ "$STATUS" = 200 ] && [ -n "$VERSION" ]; then
  pass "model info" "eclo version $VERSION, $(json 'next(m["summary"] for m in b["models"] if m["name"] == "eclo")'), $(json 'len(next(m for m in b["models"] if m["name"] == "eclo")["allowed_values"]["district"])') districts"
else
  fail "model info" "status $STATUS: $(seen)"
fi

request POST /api/predict/eclo "$WORK/classic.json"
if [ "$STATUS" = 200 ] && [ "$(json 'b["eclo"] >= 0 and 0 <= b["p_severe"] <= 1 and b["relative_risk"] >= 0 and bool(b["risk_level"])')" = True ]; then
  pass "single prediction" "eclo $(json 'round(b["eclo"], 3)'), p_severe $(json 'round(b["p_severe"], 3)') ($(json 'round(b["relative_risk"], 2)') x average), risk $(json 'b["risk_level"]'), model $(json 'b["model_version"]')"
else
  fail "single prediction" "status $STATUS: $(seen)"
fi

# The record of that prediction, found by this run's request id in the CSV export (records land within ~50 ms).
SINCE=$(date -u -d '-10 min' +%Y-%m-%dT%H:%M:%SZ)
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
  request GET "/api/predictions.csv?model=eclo&since=$SINCE"
  grep -q "$RUN_ID" "$WORK/body" 2>/dev/null && break
  [ "$STATUS" != 200 ] || [ "$(date +%s)" -gt "$deadline" ] && break
  sleep 0.2
done
RECORD=$(grep "$RUN_ID" "$WORK/body" 2>/dev/null | head -1)
if [ "$STATUS" = 200 ] && [ -n "$RECORD" ]; then
  pass "prediction record" "in GET /api/predictions.csv: $(python3 -c 'import csv,sys; r=next(csv.reader([sys.argv[1]])); print(r[0], "model", r[2], "key", r[3] or "none", "eclo", round(float(r[7]), 3), r[8])' "$RECORD")"
else
  fail "prediction record" "no record with request id $RUN_ID after ${TIMEOUT}s (status $STATUS): $(seen)"
fi

request POST /api/predict/eclo "$WORK/invalid.json"
if [ "$STATUS" = 422 ] && [ "$(json '[d["field"] for d in b["error"]["details"]]')" = "['weather']" ]; then
  pass "invalid input" "422: $(json 'b["error"]["message"]')"
else
  fail "invalid input" "status $STATUS: $(seen)"
fi

request POST /api/predict/eclo/batch "$WORK/batch100.json"
if [ "$STATUS" = 202 ]; then
  poll_batch "batch of 100" "$(json 'b["poll_url"]')" 100
else
  fail "batch of 100" "submit answered $STATUS: $(seen)"
fi

request POST /api/predict/eclo/batch "$WORK/batch101.json"
if [ "$STATUS" = 413 ] && [ "$(json 'b["error"]["code"]')" = too_large ]; then
  pass "101 rows" "413: $(json 'b["error"]["message"]')"
else
  fail "101 rows" "status $STATUS: $(seen)"
fi

request GET /api/predict/batch/00000000000000000000000000000000/results
if [ "$STATUS" = 404 ]; then
  pass "unknown batch" "404: $(json 'b["error"]["message"]')"
else
  fail "unknown batch" "status $STATUS: $(seen)"
fi

request GET /api/traffic/sensors
SENSOR=$(json 'b[0]["sensor_id"] if b else ""')
if [ "$STATUS" = 200 ] && [ -n "$SENSOR" ]; then
  python3 - "$WORK" "$SENSOR" <<'EOF'
import json, sys
from datetime import datetime, timedelta, timezone
work, sensor = sys.argv[1], sys.argv[2]
end = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=1)
readings = []
for back in range(11, -1, -1):
    stamp = (end - timedelta(minutes=5 * back)).isoformat()
    speed = 55.0 - back
    readings.append({"sensor_id": sensor, "timestamp": stamp, "speed_mph": speed, "volume": 900, "occupancy": 8.0}
                    if back % 2 else {"sensor_id": sensor, "timestamp": stamp, "traffic_data": {"speed_mph": speed}})
readings.append({"sensor_id": sensor, "timestamp": end.isoformat(), "speed_mph": 500})
json.dump({"readings": readings}, open(f"{work}/readings.json", "w"))
json.dump({"sensor_id": sensor}, open(f"{work}/congestion.json", "w"))
json.dump({"items": [{"sensor_id": sensor}] * 5}, open(f"{work}/congestion_batch.json", "w"))
EOF
  request POST /api/traffic/readings "$WORK/readings.json"
  if [ "$STATUS" = 200 ] && [ "$(json 'b["accepted"] + b["duplicates"]')" = 12 ]; then
    pass "ingest readings" "sensor $SENSOR: $(json 'b["accepted"]') accepted, $(json 'b["duplicates"]') duplicates"
  else
    fail "ingest readings" "status $STATUS: $(seen)"
  fi
  if [ "$STATUS" = 200 ] && [ "$(json '[r["index"] for r in b["rejected"]] == [12] and "speed_mph" in b["rejected"][0]["message"]')" = True ]; then
    pass "rejected reading" "index 12: $(json 'b["rejected"][0]["message"]')"
  else
    fail "rejected reading" "status $STATUS: $(seen)"
  fi
  request GET /api/traffic/current
  if [ "$STATUS" = 200 ] && [ "$(json "any(s['sensor_id'] == '$SENSOR' and s['latest'] for s in b)")" = True ]; then
    pass "current state" "$(json "next('%s: %s mph, %s, %.0f s old' % (s['sensor_id'], s['latest']['speed_mph'], s['latest']['level'], s['latest']['age_seconds']) for s in b if s['sensor_id'] == '$SENSOR')"); $(json 'len(b)') sensor(s) reporting"
  else
    fail "current state" "status $STATUS: $(seen)"
  fi
  request POST /api/predict/congestion "$WORK/congestion.json"
  if [ "$STATUS" = 200 ] && [ "$(json '[f["horizon_minutes"] for f in b["forecasts"]]')" = "[15, 30, 60]" ]; then
    pass congestion "$(json '", ".join("%s min %s mph %s" % (f["horizon_minutes"], f["speed_mph"], f["level"]) for f in b["forecasts"])')"
  else
    fail congestion "status $STATUS: $(seen)"
  fi
  request POST /api/predict/congestion/batch "$WORK/congestion_batch.json"
  if [ "$STATUS" = 202 ]; then
    poll_batch "congestion batch" "$(json 'b["poll_url"]')" 5
  else
    fail "congestion batch" "submit answered $STATUS: $(seen)"
  fi
else
  for check in "ingest readings" "rejected reading" "current state" congestion "congestion batch"; do
    fail "$check" "GET /api/traffic/sensors answered $STATUS with no sensor: $(seen)"
  done
fi

python3 - "$WORK" <<'EOF'
import sys
rows = ["ID,사고일시,요일,기상상태,시군구,도로형태,노면상태,사고유형",
        "MVP_1,2024-12-09 08,월요일,맑음,대구광역시 중구 동인동1가,교차로 - 교차로안,건조,차대차",
        "MVP_2,2024-12-10 22,화요일,비,대구광역시 수성구 범어동,단일로 - 기타,젖음/습기,차대사람",
        "MVP_3,2024-12-11 25,수요일,맑음,대구광역시 중구 동인동1가,교차로 - 교차로안,건조,차대차"]
open(f"{sys.argv[1]}/dataset.csv", "wb").write(("\r\n".join(rows) + "\r\n").encode("cp949"))
EOF
STATUS=$(curl -s -o "$WORK/body" -w '%{http_code}' -H "X-Request-ID: $RUN_ID" --max-time 30 "${KEY_HEADER[@]}" \
  -F "file=@$WORK/dataset.csv;type=text/csv" -F "name=$RUN_ID" "$BASE_URL/api/datasets" 2>/dev/null) || STATUS="000"
DATASET=$(json 'b["id"]')
if [ "$STATUS" = 201 ] && [ "$(json '(b["rows"], b["valid_rows"], b["encoding"], b["layout"])')" = "(3, 2, 'cp949', 'dacon')" ]; then
  pass "dataset upload" "$(json 'b["rows"]') rows, $(json 'b["valid_rows"]') valid, $(json 'b["encoding"]'), $(json 'b["layout"]') layout"
  request POST "/api/datasets/$DATASET/predict"
  deadline=$(( $(date +%s) + TIMEOUT ))
  state=""
  while [ "$STATUS" = 202 ] || [ "$STATUS" = 200 ]; do
    request GET "/api/datasets/$DATASET/predictions"
    state=$(json 'b["status"]')
    case "$state" in success|partial|failure|cancelled) break ;; esac
    [ "$(date +%s)" -gt "$deadline" ] && break
    sleep 0.2
  done
  request GET "/api/datasets/$DATASET/predictions.csv"
  if [ "$state" = success ] && [ "$STATUS" = 200 ] && python3 - "$WORK/body" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8-sig")))
assert [r["ID"] for r in rows] == ["MVP_1", "MVP_2", "MVP_3"]
assert float(rows[0]["predicted_eclo"]) > 0 and float(rows[1]["predicted_eclo"]) > 0 and not rows[0]["error"]
assert rows[2]["predicted_eclo"] == "" and "사고일시" in rows[2]["error"]
EOF
  then
    pass "dataset scoring" "job $state; results CSV in file order, the bad row kept with its error"
  else
    fail "dataset scoring" "job '$state', results answered $STATUS: $(seen)"
  fi
  request DELETE "/api/datasets/$DATASET"
  if [ "$STATUS" = 204 ]; then pass "dataset delete" "204"; else fail "dataset delete" "status $STATUS: $(seen)"; fi
else
  fail "dataset upload" "status $STATUS: $(seen)"
  fail "dataset scoring" "no dataset to score"
  fail "dataset delete" "no dataset to delete"
fi

printf '%s' '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' > "$WORK/tools.json"
STATUS=$(curl -s -o "$WORK/body" -w '%{http_code}' --max-time 30 "${KEY_HEADER[@]}" -H 'Content-Type: application/json' \
  -H 'Accept: application/json, text/event-stream' --data-binary "@$WORK/tools.json" "$BASE_URL/mcp" 2>/dev/null) || STATUS="000"
TOOLS=$(json 'len(b["result"]["tools"]) if "predict_eclo" in [t["name"] for t in b["result"]["tools"]] else 0')
if [ "$STATUS" = 200 ] && [ "${TOOLS:-0}" -gt 0 ]; then
  pass "mcp tools" "$TOOLS tools listed over streamable HTTP, predict_eclo among them"
else
  fail "mcp tools" "status $STATUS: $(seen)"
fi

printf '%s' '{}' > "$WORK/empty.json"
printf '%s' '{"content": "Which district is riskiest on a rainy Friday night?"}' > "$WORK/question.json"
request POST /api/assistant/conversations "$WORK/empty.json"
CONVERSATION=$(json 'b["id"]')
if [ "$STATUS" = 201 ] && [ -n "$CONVERSATION" ]; then
  request POST "/api/assistant/conversations/$CONVERSATION/messages" "$WORK/question.json"
  if [ "$STATUS" = 400 ] && [ "$(json '"X-Anthropic-API-Key" in b["error"]["message"] and "ANTHROPIC_API_KEY" in b["error"]["message"]')" = True ]; then
    pass "assistant no key" "400: $(json 'b["error"]["message"]')"
  else
    fail "assistant no key" "asking answered $STATUS: $(seen)"
  fi
  request DELETE "/api/assistant/conversations/$CONVERSATION"
else
  fail "assistant no key" "POST /api/assistant/conversations answered $STATUS: $(seen)"
fi

METRIC_AFTER=$(metric_value)
if [ -n "$METRIC_AFTER" ] && [ -n "$METRIC_BEFORE" ] && [ "$METRIC_AFTER" -ge $((METRIC_BEFORE + 1)) ]; then
  pass metrics "POST /api/predict/{model} 200s: $METRIC_BEFORE before, $METRIC_AFTER after"
else
  fail metrics "POST /api/predict/{model} 200s: '${METRIC_BEFORE}' before, '${METRIC_AFTER}' after"
fi

if [ -n "$FLOWER" ]; then
  auth=()
  [ -n "${FLOWER_AUTH:-}" ] && auth=(-u "$FLOWER_AUTH")
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${auth[@]}" "${FLOWER%/}/healthcheck" 2>/dev/null) || code=000
  if [ "$code" = 200 ]; then pass flower "$FLOWER answers 200"; else fail flower "$FLOWER answered $code"; fi
fi

if [ -n "$STREAMLIT" ]; then
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${STREAMLIT%/}/_stcore/health" 2>/dev/null) || code=000
  if [ "$code" = 200 ]; then pass streamlit "$STREAMLIT answers 200"; else fail streamlit "$STREAMLIT answered $code"; fi
fi

echo "$FAILURES check(s) failed"
exit "$FAILURES"
