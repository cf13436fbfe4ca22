//! The two Redis queue scripts that decide whether a job is (re)admitted: ENQUEUE (dedupe, and
//! ingest's high-water mark) and RECOVER (the jobs of dead workers, counted, poison ones
//! dead-lettered). The rest live beside their callers in `redis.rs`.

/// All-or-nothing enqueue with dedupe, in one round trip. Consumers take from the right of
/// `ready`, so a job placed at the head (high lane, or a fired route) is pushed there (next to
/// go) and any other to the left. KEYS: ready, low, dedupe keys…; ARGV: high-water mark ('none'
/// for work already accepted), ttl seconds, then (id, bytes, placement: 'head', 'tail' or 'low')
/// per job.
pub(super) const ENQUEUE: &str = r#"
local mark = tonumber(ARGV[1])
if mark then
  local depth = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2])
  if depth >= mark then
    return {-1, tostring(depth)}
  end
end
local out = {}
for i = 3, #KEYS do
  local id = ARGV[3 * i - 6]
  local bytes = ARGV[3 * i - 5]
  local place = ARGV[3 * i - 4]
  if redis.call('SET', KEYS[i], id, 'NX', 'EX', ARGV[2]) then
    if place == 'head' then
      redis.call('RPUSH', KEYS[1], bytes)
    elseif place == 'low' then
      redis.call('LPUSH', KEYS[2], bytes)
    else
      redis.call('LPUSH', KEYS[1], bytes)
    end
    out[#out + 1] = 1
    out[#out + 1] = id
  else
    out[#out + 1] = 0
    out[#out + 1] = redis.call('GET', KEYS[i]) or id
  end
end
return out
"#;

/// The jobs of dead workers go back to the front of the ready list, each with one more
/// recovery counted; a job whose worker has now died ARGV[3] times is dead-lettered instead (the
/// usual dead letter: the job, the reason, when), so a job that kills its process cannot
/// crash-loop every replica. The count is the envelope's first field, `"recoveries":N`
/// (serialised first for this), rewritten in place: the payload is never decoded and re-encoded.
/// The workers are those of ARGV[4] when given (a worker task that panicked; it stays
/// registered for its replacement), else every consumer whose heartbeat is older than ARGV[1] ms
/// (forgotten afterwards). KEYS: consumers, ready, dead; ARGV: visibility ms, processing key
/// prefix, max recoveries, consumer or ''. Answers {requeued, dead-lettered}.
pub(super) const RECOVER: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[3])
local consumers
if ARGV[4] ~= '' then
  consumers = {ARGV[4]}
else
  consumers = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
end
local requeued, dead = 0, 0
for _, consumer in ipairs(consumers) do
  local list = ARGV[2] .. consumer
  while true do
    local job = redis.call('RPOP', list)
    if not job then break end
    local deaths, rest = nil, nil
    local counted = string.match(job, '^{"recoveries":(%d+),')
    if counted then
      deaths = tonumber(counted) + 1
      rest = string.sub(job, string.len(counted) + 16)
    elseif string.sub(job, 1, 2) == '{"' then
      deaths = 1
      rest = string.sub(job, 2)
    end
    if not deaths then
      -- Not an envelope: back as it is; a take parks it as unreadable.
      redis.call('RPUSH', KEYS[2], job)
      requeued = requeued + 1
    else
      local again = '{"recoveries":' .. string.format('%d', deaths) .. ',' .. rest
      if deaths >= max then
        redis.call('LPUSH', KEYS[3], '{"job":' .. again .. ',"reason":"worker died ' ..
          string.format('%d', deaths) .. ' times while running it","dead_at_ms":' ..
          string.format('%d', now) .. '}')
        dead = dead + 1
      else
        redis.call('RPUSH', KEYS[2], again)
        requeued = requeued + 1
      end
    end
  end
  if ARGV[4] == '' then
    redis.call('ZREM', KEYS[1], consumer)
  end
end
return {requeued, dead}
"#;

/// Moves a held job elsewhere only if this consumer still holds it, so a job recovered by
/// another replica is not duplicated. KEYS: processing, target; ARGV: held bytes, new bytes,
/// mode ('delay' with ARGV[4] = delay ms, 'dead', 'release').
pub(super) const MOVE_HELD: &str = r#"
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
if removed == 0 then return 0 end
if ARGV[3] == 'delay' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[2])
elseif ARGV[3] == 'dead' then
  redis.call('LPUSH', KEYS[2], ARGV[2])
else
  redis.call('RPUSH', KEYS[2], ARGV[2])
end
return 1
"#;

/// Due delayed jobs return to their lane (Redis's clock is the one clock all replicas share):
/// high to the front of `ready`, normal to its back, low to `low`. Then low jobs join the back
/// of `ready`: freely when fewer than ARGV[2] are ready, else one per call, so they never
/// starve. KEYS: delayed:high, delayed:normal, delayed:low, ready, low; ARGV: max jobs per set
/// per call, short-queue threshold.
pub(super) const PROMOTE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[1])
local moved = 0
local function promote(set, target, push)
  local due = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, max)
  for _, job in ipairs(due) do
    redis.call(push, target, job)
    redis.call('ZREM', set, job)
  end
  moved = moved + #due
end
promote(KEYS[1], KEYS[4], 'RPUSH')
promote(KEYS[2], KEYS[4], 'LPUSH')
promote(KEYS[3], KEYS[5], 'LPUSH')
local low = 1
if redis.call('LLEN', KEYS[4]) < tonumber(ARGV[2]) then low = max end
for _ = 1, low do
  if not redis.call('LMOVE', KEYS[5], KEYS[4], 'RIGHT', 'LEFT') then break end
  moved = moved + 1
end
return moved
"#;

/// Depth of every state in one round trip. KEYS: ready, dead, consumers, low, delayed:high,
/// delayed:normal, delayed:low; ARGV: processing key prefix.
pub(super) const DEPTH: &str = r#"
local in_flight = 0
for _, c in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  in_flight = in_flight + redis.call('LLEN', ARGV[1] .. c)
end
local delayed = redis.call('ZCARD', KEYS[5]) + redis.call('ZCARD', KEYS[6]) + redis.call('ZCARD', KEYS[7])
return {redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[4]), in_flight, delayed, redis.call('LLEN', KEYS[2])}
"#;

/// Heartbeats use Redis's clock, like recovery, so replicas' clocks never disagree.
/// KEYS: consumers; ARGV: consumer ids.
pub(super) const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, consumer in ipairs(ARGV) do
  redis.call('ZADD', KEYS[1], now, consumer)
end
return #ARGV
"#;
