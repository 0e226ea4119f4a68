"""The job store's Lua scripts: each runs in Redis as one atomic step.

Only `shoal.store` runs them; they are here so that module reads as Python.
"""

from __future__ import annotations

# KEYS: job, lease, inflight hash, queued zset, audio-expiry zset, queue list,
#       webhooks queue list, delivery record
# ARGV: id, allowed from-states, to-state, required token, worker, new token,
#       lease ms, retention s, message, audio key, audio expires at, channel,
#       webhook event, its message, its webhook id, then field/value pairs to set.
TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing', ''} end
if not string.find(' ' .. ARGV[2] .. ' ', ' ' .. status .. ' ', 1, true) then
  return {'refused', status}
end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'lease_token') ~= ARGV[4] then
  return {'stale', status}
end
local t = redis.call('TIME')
local now = t[1] .. '.' .. string.format('%06d', t[2])
local id, to = ARGV[1], ARGV[3]
redis.call('HSET', KEYS[1], 'status', to, 'updated_at', now)
for i = 16, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if to == 'queued' then
  redis.call('HDEL', KEYS[3], id)
  redis.call('DEL', KEYS[2])
  redis.call('HDEL', KEYS[1], 'lease_token', 'worker')
  redis.call('ZADD', KEYS[4], now, id)
  redis.call('LPUSH', KEYS[6], ARGV[9])
elseif to == 'running' then
  redis.call('ZREM', KEYS[4], id)
  redis.call('HSET', KEYS[1], 'started_at', now, 'lease_token', ARGV[6], 'worker', ARGV[5])
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('HSET', KEYS[3], id, ARGV[5])
  redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[7])
else
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', KEYS[3], id)
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'finished_at', now)
  if ARGV[10] ~= '' then redis.call('ZADD', KEYS[5], ARGV[11], ARGV[10]) end
  redis.call('PUBLISH', ARGV[12], to)
end
local events = ' ' .. (redis.call('HGET', KEYS[1], 'webhook_events') or '') .. ' '
if ARGV[13] ~= '' and string.find(events, ' ' .. ARGV[13] .. ' ', 1, true) then
  redis.call('LPUSH', KEYS[7], ARGV[14])
  redis.call('HSET', KEYS[8], 'state', 'pending', 'webhook_id', ARGV[15], 'attempts', 0,
             'next_attempt_at', now)
  redis.call('EXPIRE', KEYS[8], ARGV[8])
end
redis.call('EXPIRE', KEYS[1], ARGV[8])
return {'ok', status}
"""

# KEYS: job, queued zset, queue list, idempotency key
# ARGV: id, retention s, message, fingerprint ('' = no idempotency key), idempotency ttl,
#       then field/value pairs.
CREATE = """
if ARGV[4] ~= '' then
  local prior = redis.call('HMGET', KEYS[4], 'job', 'fingerprint')
  if prior[1] then return {'exists', prior[1], prior[2]} end
  redis.call('HSET', KEYS[4], 'job', ARGV[1], 'fingerprint', ARGV[4])
  redis.call('EXPIRE', KEYS[4], ARGV[5])
end
local t = redis.call('TIME')
local now = t[1] .. '.' .. string.format('%06d', t[2])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'status', 'queued', 'attempts', 0,
           'created_at', now, 'updated_at', now)
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[3])
return {'created', ARGV[1], '', now}
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
