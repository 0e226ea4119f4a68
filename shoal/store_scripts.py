"""The job store's Lua scripts: each runs in Redis as one atomic step.

Only `shoal.store` runs them; they are here so that module reads as Python.
Scripts that take many arguments take them as one JSON object of named fields
(`cjson` is built into Redis), so adding a field never renumbers the others.

The per-owner index of queued jobs (`<owner_prefix><owner>`) is named inside
the scripts from the job's owner, which the caller does not know: shoal runs
on one Redis, not a cluster.
"""

from __future__ import annotations

# The clock every script reads: Redis's own, so all replicas of every process agree.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local stamp = t[1] .. '.' .. string.format('%06d', t[2])
"""

# KEYS: job, lease, inflight hash, queued zset, audio-expiry zset, queue list,
#       webhooks queue list, delivery record, scheduled (delayed) zset, completions stream
# ARGV[1]: JSON {id, from ("queued running"), to, token (required, '' = any),
#       lease_gone (only if the lease key is gone), worker, new_token, lease_ms,
#       retention, message, tag, not_before, audio_key, audio_expires_at, channel,
#       event, event_message, webhook_id, owner_prefix, count_owner (per-owner caps
#       are on: index the owner's queued jobs), completions_max, set {field: value}}
TRANSITION = (
    _NOW
    + """
local a = cjson.decode(ARGV[1])
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', ''} end
if status == a.to then
  -- The same call again (the client retried after losing the reply): it took effect.
  local held = redis.call('HGET', KEYS[1], 'lease_token')
  if held and (held == a.token or held == a.new_token) then return {'ok', status} end
end
if not string.find(' ' .. a.from .. ' ', ' ' .. status .. ' ', 1, true) then
  return {'refused', status}
end
if a.token ~= '' and redis.call('HGET', KEYS[1], 'lease_token') ~= a.token then
  return {'stale', status}
end
-- Maintenance acts on a lapsed lease only if it is still lapsed now: a worker that
-- renewed late (a long pause) keeps its job instead of running it twice.
if a.lease_gone and redis.call('EXISTS', KEYS[2]) == 1 then return {'leased', status} end
local id, to = a.id, a.to
-- The first write uses memory: under maxmemory Redis refuses it before anything changed.
redis.call('HSET', KEYS[1], 'status', to, 'updated_at', stamp)
local owner_queued = a.owner_prefix .. (redis.call('HGET', KEYS[1], 'owner') or '')
if status == 'queued' then
  redis.call('ZREM', KEYS[4], id)
  redis.call('ZREM', owner_queued, id)
  local message = redis.call('HGET', KEYS[1], 'message')
  if to ~= 'running' and message then
    -- Canceled while waiting: its message leaves the list KEDA counts.
    redis.call('LREM', KEYS[6], 1, message)
    redis.call('ZREM', KEYS[9], message)
  end
  redis.call('HDEL', KEYS[1], 'message', 'message_tag', 'not_before', 'orphan_seen')
end
for field, value in pairs(a.set) do redis.call('HSET', KEYS[1], field, value) end
if to == 'queued' then
  redis.call('HDEL', KEYS[3], id)
  redis.call('DEL', KEYS[2])
  redis.call('HDEL', KEYS[1], 'lease_token', 'worker')
  redis.call('ZADD', KEYS[4], stamp, id)
  if a.count_owner then redis.call('ZADD', owner_queued, stamp, id) end
  redis.call('HSET', KEYS[1], 'message', a.message, 'message_tag', a.tag)
  if a.not_before > now then
    redis.call('HSET', KEYS[1], 'not_before', a.not_before)
    redis.call('ZADD', KEYS[9], a.not_before, a.message)
  else
    redis.call('LPUSH', KEYS[6], a.message)
  end
elseif to == 'running' then
  redis.call('HSET', KEYS[1], 'started_at', stamp, 'lease_token', a.new_token, 'worker', a.worker)
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('HSET', KEYS[3], id, a.worker)
  redis.call('SET', KEYS[2], a.new_token, 'PX', a.lease_ms)
else
  redis.call('HDEL', KEYS[3], id)
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'finished_at', stamp)
  if a.audio_key ~= '' then redis.call('ZADD', KEYS[5], a.audio_expires_at, a.audio_key) end
  redis.call('PUBLISH', a.channel, to)
  local times = redis.call('HMGET', KEYS[1], 'created_at', 'started_at')
  redis.call('XADD', KEYS[10], 'MAXLEN', '~', a.completions_max, '*', 'job', id, 'status', to,
             'created', times[1] or '', 'started', times[2] or '', 'finished', stamp)
end
local events = ' ' .. (redis.call('HGET', KEYS[1], 'webhook_events') or '') .. ' '
if a.event ~= '' and string.find(events, ' ' .. a.event .. ' ', 1, true) then
  redis.call('LPUSH', KEYS[7], a.event_message)
  redis.call('HSET', KEYS[8], 'state', 'pending', 'webhook_id', a.webhook_id, 'attempts', 0,
             'next_attempt_at', stamp)
  redis.call('EXPIRE', KEYS[8], a.retention)
end
redis.call('EXPIRE', KEYS[1], a.retention)
-- The Idempotency-Key lives exactly as long as the job it names.
local idempotency = redis.call('HGET', KEYS[1], 'idempotency_key')
if idempotency then redis.call('EXPIRE', idempotency, a.retention) end
return {'ok', status}
"""
)

# KEYS: job, queued zset, queue list, idempotency key ('' = none), owner's queued zset
# ARGV[1]: JSON {id, retention, message, tag, fingerprint, hold, max_queued,
#       owner_max_queued, job_prefix, fields {field: value}}
# Returns {'created', id, created_at} | {'exists', id} | {'conflict', id}
#       | {'in_progress', id, open_until} | {'queue_full', n} | {'owner_full', n}
CREATE = (
    _NOW
    + """
local a = cjson.decode(ARGV[1])
-- Ids are random: an existing record means this call ran before (a retried reply).
local created = redis.call('HGET', KEYS[1], 'created_at')
if created then return {'created', a.id, created} end
if KEYS[4] ~= '' then
  local prior = redis.call('HMGET', KEYS[4], 'job', 'fingerprint', 'open_until')
  -- A key whose job has expired is free again.
  if prior[1] and redis.call('EXISTS', a.job_prefix .. prior[1]) == 1 then
    if prior[2] ~= a.fingerprint then return {'conflict', prior[1]} end
    if prior[3] and tonumber(prior[3]) > now then return {'in_progress', prior[1], prior[3]} end
    return {'exists', prior[1]}
  end
end
-- Admission: refuse before writing anything.
if a.max_queued > 0 then
  local waiting = redis.call('ZCARD', KEYS[2])
  if waiting >= a.max_queued then return {'queue_full', waiting} end
end
if a.owner_max_queued > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - a.retention)  -- jobs that expired
  local waiting = redis.call('ZCARD', KEYS[5])
  if waiting >= a.owner_max_queued then return {'owner_full', waiting} end
end
-- The first write uses memory: under maxmemory Redis refuses it before anything changed.
redis.call('HSET', KEYS[1], 'id', a.id, 'status', 'queued', 'attempts', 0,
           'created_at', stamp, 'updated_at', stamp, 'message', a.message, 'message_tag', a.tag)
for field, value in pairs(a.fields) do redis.call('HSET', KEYS[1], field, value) end
redis.call('EXPIRE', KEYS[1], a.retention)
if KEYS[4] ~= '' then
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[4], 'job', a.id, 'fingerprint', a.fingerprint,
             'open_until', a.hold > 0 and now + a.hold or 0)
  redis.call('EXPIRE', KEYS[4], a.retention)
  redis.call('HSET', KEYS[1], 'idempotency_key', KEYS[4])
end
redis.call('ZADD', KEYS[2], stamp, a.id)
if a.owner_max_queued > 0 then redis.call('ZADD', KEYS[5], stamp, a.id) end
redis.call('LPUSH', KEYS[3], a.message)
return {'created', a.id, stamp}
"""
)

# KEYS: idempotency key. The request that made the job has answered: replays are
# no longer "in progress".
SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'open_until', 0) end
return 1
"""

# KEYS: job, lease. ARGV: token, lease ms. Returns 'ours', 'stale' or the job's status.
RENEW = """
local s = redis.call('HMGET', KEYS[1], 'status', 'lease_token')
if s[1] ~= 'running' then return s[1] or 'missing' end
if s[2] ~= ARGV[1] then return 'stale' end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 'ours'
"""

# KEYS: inflight hash. ARGV: lease key prefix. Returns running job ids whose lease expired.
LOST = """
local lost = {}
for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then table.insert(lost, id) end
end
return lost
"""

# Queued jobs whose message is gone (taken by a worker that died before claiming,
# lost between the broker's pop and its unacked record, or purged).
# KEYS: queued zset, queue list, scheduled zset, broker's unacked hash, its index zset
# ARGV: grace s, batch, confirm s, job key prefix.
# A message is present while it waits in the list or the scheduled set, or while a
# worker holds it (unacked) for less than `grace`: a live worker claims at once.
# A job seen without its message twice, `confirm` seconds apart, is returned.
ORPHANS = (
    _NOW
    + """
local grace, confirm = tonumber(ARGV[1]), tonumber(ARGV[3])
local found = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - grace,
                               'LIMIT', 0, tonumber(ARGV[2]))) do
  local key = ARGV[4] .. id
  local j = redis.call('HMGET', key, 'status', 'message', 'message_tag', 'orphan_seen')
  if not j[1] then
    redis.call('ZREM', KEYS[1], id)  -- the record expired while waiting
  elseif j[1] == 'queued' and j[2] then
    local present = redis.call('ZSCORE', KEYS[3], j[2])
                    or redis.call('LPOS', KEYS[2], j[2], 'RANK', -1)
    if not present and redis.call('HEXISTS', KEYS[4], j[3]) == 1 then
      local since = tonumber(redis.call('ZSCORE', KEYS[5], j[3]) or now)
      present = now - since < grace
    end
    if present then
      if j[4] then redis.call('HDEL', key, 'orphan_seen') end
    elseif not j[4] then
      redis.call('HSET', key, 'orphan_seen', now)
    elseif now - tonumber(j[4]) >= confirm then
      table.insert(found, id)
    end
  end
end
return found
"""
)

# KEYS: job, queue list. ARGV: the message the job was found without, a new one, its tag.
# Gives a still-orphaned queued job a fresh message; 0 if it moved on meanwhile.
REDISPATCH = """
local j = redis.call('HMGET', KEYS[1], 'status', 'message')
if j[1] ~= 'queued' or j[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'message', ARGV[2], 'message_tag', ARGV[3])
redis.call('HDEL', KEYS[1], 'orphan_seen', 'not_before')
redis.call('LPUSH', KEYS[2], ARGV[2])
return 1
"""

# KEYS: scheduled zset, queue list. ARGV: batch. Moves messages that are due onto the
# queue; returns how many.
PROMOTE = (
    _NOW
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, message in ipairs(due) do
  redis.call('LPUSH', KEYS[2], message)
  redis.call('ZREM', KEYS[1], message)
end
return #due
"""
)
