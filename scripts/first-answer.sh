#!/bin/sh
# first-answer.sh MODE — seconds from launching tidegate to its listener
# being ready and to its first chat answer (sim/fast, whose simulated answer
# takes about 0.2 s). MODE: cold (go run, empty build cache; modules already
# downloaded), warm (go run, cache filled), binary (a prebuilt ./tidegate;
# `make build` makes it).
set -eu
mode=${1:?usage: scripts/first-answer.sh cold|warm|binary}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'pkill -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
cat >"$tmp/tidegate.yaml" <<YAML
store: sqlite:$tmp/tidegate.db
providers: [{name: sim, type: sim}]
models: [{name: chat, targets: [sim/balanced, sim/fast]}]
YAML
key=tg-master-first-answer
args="serve --config $tmp/tidegate.yaml --listen 127.0.0.1:0 --addr-file $tmp/addr"
start=$(date +%s.%N)
case $mode in
cold) GOCACHE="$tmp/gocache" TIDEGATE_MASTER_KEY=$key go run ./cmd/tidegate $args >"$tmp/out" 2>&1 & ;;
warm) TIDEGATE_MASTER_KEY=$key go run ./cmd/tidegate $args >"$tmp/out" 2>&1 & ;;
binary) TIDEGATE_MASTER_KEY=$key ./tidegate $args >"$tmp/out" 2>&1 & ;;
*) echo "unknown mode $mode" >&2; exit 2 ;;
esac
pid=$!
until [ -s "$tmp/addr" ]; do
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/out" >&2; exit 1; }
	sleep 0.01
done
ready=$(date +%s.%N)
curl -sf "http://$(cat "$tmp/addr")/v1/chat/completions" -H "Authorization: Bearer $key" \
	-H 'Content-Type: application/json' -d '{"model":"sim/fast","messages":[{"role":"user","content":"Hello"}]}' >/dev/null
end=$(date +%s.%N)
echo "$mode: ready after $(echo "$ready - $start" | bc) s, first answer after $(echo "$end - $start" | bc) s"
