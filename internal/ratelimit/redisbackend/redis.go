// Package redisbackend counts rate limits in Redis, for several replicas.
package redisbackend

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tidegate/tidegate/internal/ratelimit"
)

// Redis is a ratelimit.Backend in Redis: one Lua script (one round trip) per admission and
// one per finished request. Times are Redis's own (TIME), so replicas'
// clocks need not agree. A key's counters share a hash tag, so a script
// touches one cluster slot.
type Redis struct {
	client *redis.Client
	prefix string
	window time.Duration
}

// Open connects to url (redis://[user:pass@]host:port/db). Every
// command is bounded by timeout and never retried: a slow Redis must not
// hold requests, the Limiter's policy answers instead.
func Open(url, prefix string, window, timeout time.Duration) (*Redis, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = timeout, timeout, timeout, timeout
	opts.MaxRetries = -1 // none
	opts.ContextTimeoutEnabled = true
	if window <= 0 {
		window = time.Minute
	}
	return &Redis{client: redis.NewClient(opts), prefix: prefix, window: window}, nil
}

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

func (r *Redis) keys(key string, kinds ...string) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = r.prefix + "{" + key + "}:" + k
	}
	return out
}

// luaNow is Redis's clock in ms and the bucket it falls in (ARGV[1]: the
// bucket width in ms).
const luaNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local width = tonumber(ARGV[1])
local cur = math.floor(now / width)
`

// admitScript: KEYS requests, tokens, streams; ARGV width, rpm, tpm,
// max_streams, lease, lease_ms. Returns {limit, wait_ms}.
var admitScript = redis.NewScript(luaNow + `
local rpm, tpm, maxs = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local function sum(key)
  local total, oldest = 0, cur
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local b = tonumber(all[i])
    if cur - b >= 60 then
      redis.call('HDEL', key, all[i])
    else
      total = total + tonumber(all[i + 1])
      if b < oldest then oldest = b end
    end
  end
  return total, oldest
end
if rpm > 0 then
  local n, o = sum(KEYS[1])
  if n >= rpm then return {'rpm', (o + 60) * width - now} end
end
if tpm > 0 then
  local n, o = sum(KEYS[2])
  if n >= tpm then return {'tpm', (o + 60) * width - now} end
end
if ARGV[5] ~= '' then
  local ttl = tonumber(ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= maxs then return {'max_streams', 1000} end
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[5])
  redis.call('PEXPIRE', KEYS[3], ttl * 2)
end
redis.call('HINCRBY', KEYS[1], cur, 1)
redis.call('PEXPIRE', KEYS[1], width * 61)
return {'', 0}
`)

// doneScript: KEYS tokens, streams; ARGV width, tokens, lease.
var doneScript = redis.NewScript(luaNow + `
local n = tonumber(ARGV[2])
if n > 0 then
  redis.call('HINCRBY', KEYS[1], cur, n)
  redis.call('PEXPIRE', KEYS[1], width * 61)
end
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[2], ARGV[3]) end
return 0
`)

// renewScript (sent whole: a pipeline cannot fall back from EVALSHA): KEYS streams; ARGV width, lease_ms, lease… (only leases
// still held: XX never revives one the reclaimer already dropped).
var renewScript = redis.NewScript(luaNow + `
local ttl = tonumber(ARGV[2])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return 0
`)

// heartbeatScript: KEYS replicas; ARGV width, ttl_ms, replica. Returns the live count.
var heartbeatScript = redis.NewScript(luaNow + `
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])
`)

func (r *Redis) width() int64 { return ratelimit.BucketWidth(r.window).Milliseconds() }

func (r *Redis) Admit(ctx context.Context, key string, l ratelimit.Limits, lease string, ttl time.Duration) (ratelimit.Verdict, error) {
	res, err := admitScript.Run(ctx, r.client, r.keys(key, "r", "t", "s"),
		r.width(), l.RPM, l.TPM, l.MaxStreams, lease, ttl.Milliseconds()).Slice()
	if err != nil {
		return ratelimit.Verdict{}, fmt.Errorf("limits: redis: %w", err)
	}
	if len(res) != 2 {
		return ratelimit.Verdict{}, fmt.Errorf("limits: redis: unexpected answer %v", res)
	}
	limit, _ := res[0].(string)
	ms, _ := res[1].(int64)
	return ratelimit.Verdict{Limit: limit, Wait: time.Duration(max(ms, 0)) * time.Millisecond}, nil
}

func (r *Redis) Done(ctx context.Context, key string, tokens int64, lease string) error {
	err := doneScript.Run(ctx, r.client, r.keys(key, "t", "s"), r.width(), tokens, lease).Err()
	if err != nil {
		return fmt.Errorf("limits: redis: %w", err)
	}
	return nil
}

func (r *Redis) Renew(ctx context.Context, leases map[string]string, ttl time.Duration) error {
	byKey := map[string][]any{}
	for id, k := range leases {
		byKey[k] = append(byKey[k], id)
	}
	pipe := r.client.Pipeline()
	for k, ids := range byKey {
		renewScript.Eval(ctx, pipe, r.keys(k, "s"), append([]any{r.width(), ttl.Milliseconds()}, ids...)...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("limits: redis: renew: %w", err)
	}
	return nil
}

func (r *Redis) Heartbeat(ctx context.Context, replica string, ttl time.Duration) (int, error) {
	n, err := heartbeatScript.Run(ctx, r.client, []string{r.prefix + "replicas"}, r.width(), ttl.Milliseconds(), replica).Int()
	if err != nil {
		return 0, fmt.Errorf("limits: redis: heartbeat: %w", err)
	}
	return n, nil
}

// String names the backend without its credentials.
func (r *Redis) String() string { return "redis db " + strconv.Itoa(r.client.Options().DB) }
