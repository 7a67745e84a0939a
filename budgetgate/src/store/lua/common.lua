-- budgetgate: shared prelude of every script (one script = one round trip).
--
-- Amounts are two limbs {u, n}: whole units and nano-units (0 <= n < 1e9),
-- so every number stays an exact integer below 2^53; nothing is a float sum.
-- Time is the server's TIME in microseconds (or ARGV[1], for tests).
--
-- KEYS: 1 res (hash id -> "u|n|ts|wids", plus "@last"), 2 resx (zset id by
--       expiry), 3 done (hash id -> outcome), 4 donex (zset id by time),
--       5 tracks (set of "wid|window_us").
-- ARGV: 1 now override or "", 2 unused, 3 tombstone retention (us),
--       4 key TTL (ms), 5 base of per-window keys, 6 number of limits, ...
local B = 1000000000
local function norm(u, n)
  local c = math.floor(n / B)
  return u + c, n - c * B
end
local function fmt(x) return string.format('%.0f', x) end
local function gt(au, an, bu, bn)
  if au ~= bu then return au > bu end
  return an > bn
end

local K_RES, K_RESX, K_DONE, K_DONEX, K_TRACKS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- Time never goes backwards for one ledger.
local last = tonumber(redis.call('HGET', K_RES, '@last') or '0')
if last > now then now = last end
redis.call('HSET', K_RES, '@last', fmt(now))
local RETENTION = tonumber(ARGV[3])
local KEEP_MS = tonumber(ARGV[4])
local BASE = ARGV[5]

-- Every window this ledger counts in: a running total and (rolling) entries.
local tracks, by_wid = {}, {}
local function load_track(wid, win)
  if by_wid[wid] then return by_wid[wid] end
  local t = { wid = wid, win = win, tot = BASE .. ':t:' .. wid, ent = BASE .. ':e:' .. wid }
  local v = redis.call('HMGET', t.tot, 'cu', 'cn', 'ru', 'rn')
  t.cu, t.cn = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  t.ru, t.rn = tonumber(v[3]) or 0, tonumber(v[4]) or 0
  table.insert(tracks, t)
  by_wid[wid] = t
  return t
end
for _, m in ipairs(redis.call('SMEMBERS', K_TRACKS)) do
  local wid, win = string.match(m, '^(.*)|(%d+)$')
  load_track(wid, tonumber(win))
end
local function ensure_track(wid, win)
  if not by_wid[wid] then redis.call('SADD', K_TRACKS, wid .. '|' .. fmt(win)) end
  return load_track(wid, win)
end

-- Entries: "id|u|n|kind", kind h (held) or c (committed), scored by time.
local function member(id, u, n, kind) return id .. '|' .. fmt(u) .. '|' .. fmt(n) .. '|' .. kind end
local function parse_member(m)
  local id, u, n, kind = string.match(m, '^(.-)|(%-?%d+)|(%d+)|(%a)$')
  return id, tonumber(u), tonumber(n), kind
end

-- Prune what left each rolling window: only the leaving entries are read.
for _, t in ipairs(tracks) do
  if t.win > 0 then
    local cutoff = '(' .. fmt(now - t.win)
    local gone = redis.call('ZRANGEBYSCORE', t.ent, '-inf', cutoff)
    if #gone > 0 then
      for _, m in ipairs(gone) do
        local _, u, n, kind = parse_member(m)
        if kind == 'h' then t.ru, t.rn = norm(t.ru - u, t.rn - n)
        else t.cu, t.cn = norm(t.cu - u, t.cn - n) end
      end
      redis.call('ZREMRANGEBYSCORE', t.ent, '-inf', cutoff)
    end
  end
end

-- Reservations: "u|n|ts|wid,wid" (the windows the hold was counted in).
local function parse_res(rec)
  local u, n, ts, wids = string.match(rec, '^(%-?%d+)|(%d+)|(%d+)|(.*)$')
  local set = {}
  for w in string.gmatch(wids, '[^,]+') do set[w] = true end
  return tonumber(u), tonumber(n), tonumber(ts), set
end
local function drop_hold(id, u, n, wids)
  for _, t in ipairs(tracks) do
    local counted = false
    if wids[t.wid] then
      if t.win == 0 then counted = true
      else counted = redis.call('ZREM', t.ent, member(id, u, n, 'h')) == 1 end
    end
    if counted then t.ru, t.rn = norm(t.ru - u, t.rn - n) end
  end
end

-- Expire reservations whose TTL passed: their headroom returns.
local expired = redis.call('ZRANGEBYSCORE', K_RESX, '-inf', fmt(now))
for _, id in ipairs(expired) do
  local rec = redis.call('HGET', K_RES, id)
  if rec then
    local u, n, _, wids = parse_res(rec)
    drop_hold(id, u, n, wids)
    redis.call('HDEL', K_RES, id)
  end
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', K_RESX, '-inf', fmt(now)) end

-- Forget settled ids after the retention.
local forget = '(' .. fmt(now - RETENTION)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_DONEX, '-inf', forget)) do
  redis.call('HDEL', K_DONE, id)
end
redis.call('ZREMRANGEBYSCORE', K_DONEX, '-inf', forget)

-- Write totals back and put a TTL on every key of the ledger.
local function save()
  for _, t in ipairs(tracks) do
    redis.call('HSET', t.tot, 'cu', fmt(t.cu), 'cn', fmt(t.cn), 'ru', fmt(t.ru), 'rn', fmt(t.rn))
    redis.call('PEXPIRE', t.tot, KEEP_MS)
    if t.win > 0 then redis.call('PEXPIRE', t.ent, KEEP_MS) end
  end
  for _, k in ipairs({ K_RES, K_RESX, K_DONE, K_DONEX, K_TRACKS }) do
    redis.call('PEXPIRE', k, KEEP_MS)
  end
end
