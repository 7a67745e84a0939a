-- budgetgate: one rate check (check and, if admitted, record), one round trip.
-- KEYS[1] log (zset of admitted calls by time), KEYS[2] state (hash: last,
-- call, ta, tr). ARGV: 1 now override or "", 2 max_calls (0: none),
-- 3 window_us, 4 cooldown_us (-1: none), 5 capacity (0: no bucket),
-- 6 refill tokens k, 7 refill period_us, 8 call id, 9 key TTL (ms),
-- 10 '1' to record an admitted call, '0' to only say whether one would be.
-- Returns {admitted, reason, calls_in_window, since_last_us, retry_after_us}.
--
-- The bucket is GCRA with its theoretical arrival time kept as two integers,
-- TAT = ta + tr/k (0 <= tr < k), so the interval period/k needs no fraction
-- and every number stays an exact integer below 2^53.
local function fmt(x) return string.format('%d', x) end
local now = NOW0 -- now.lua
local max, window, cooldown = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cap, k, period = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local id, keep = ARGV[8], ARGV[9]
local st = redis.call('HMGET', KEYS[2], 'last', 'call', 'ta', 'tr')
local last, call, ta, tr = tonumber(st[1]), tonumber(st[2]), tonumber(st[3]), tonumber(st[4])
if last and last > now then now = last end

local reason, wait = nil, 0
local function block(r, w)
  if reason == nil then reason = r end
  if w > wait then wait = w end
end

local calls = 0
if max > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. fmt(now - window))
  calls = redis.call('ZCARD', KEYS[1])
  if calls >= max then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    local first = tonumber(oldest[2] or fmt(now))
    block('TOO_MANY_CALLS', first + window + 1 - now)
  end
end
if cooldown >= 0 and call and now - call < cooldown then
  block('COOLDOWN', call + cooldown - now)
end
local na, nr
if cap > 0 then
  local a, r = ta, tr
  if a == nil or a < now then a, r = now, 0 end
  -- tolerance (cap-1)*period/k = tq + tm/k
  local total = (cap - 1) * period
  local tq, tm = math.floor(total / k), total % k
  local da, dr = a - tq, r - tm
  if dr < 0 then da, dr = da - 1, dr + k end
  -- admitted iff now >= da + dr/k
  if now < da or (now == da and dr > 0) then
    local w = da - now
    if dr > 0 then w = w + 1 end
    block('BUCKET_EMPTY', w)
  else
    na, nr = a + math.floor(period / k), r + period % k
    if nr >= k then na, nr = na + 1, nr - k end
  end
end

local since = ''
if call then since = fmt(now - call) end
if ARGV[10] == '0' then
  if reason then
    if wait < 1 then wait = 1 end
    return { '0', reason, tostring(calls), since, fmt(wait) }
  end
  return { '1', '', tostring(calls), since, '' }
end
if reason then
  redis.call('HSET', KEYS[2], 'last', fmt(now))
  redis.call('PEXPIRE', KEYS[2], keep)
  if wait < 1 then wait = 1 end
  return { '0', reason, tostring(calls), since, fmt(wait) }
end
if max > 0 then
  redis.call('ZADD', KEYS[1], fmt(now), id)
  redis.call('PEXPIRE', KEYS[1], keep)
  calls = calls + 1
end
if na then
  redis.call('HSET', KEYS[2], 'last', fmt(now), 'call', fmt(now), 'ta', fmt(na), 'tr', fmt(nr))
else
  redis.call('HSET', KEYS[2], 'last', fmt(now), 'call', fmt(now))
end
redis.call('PEXPIRE', KEYS[2], keep)
return { '1', '', tostring(calls), since, '' }
