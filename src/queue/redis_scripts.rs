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
