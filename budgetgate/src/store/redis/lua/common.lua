-- budgetgate: shared prelude of every script (one script = one round trip).
--
-- Amounts are two limbs {u, n}: whole units and nano-units (0 <= n < 1e9),
-- so every number stays an exact integer below 2^53; nothing is a float sum.
-- Time is the server's TIME in microseconds (or ARGV[1], for tests).
--
-- Keys (one hash tag): KEYS[1] meta (hash: last, minexp, tracks and
-- per window <wid> = "cu,cn,ru,rn,old"), KEYS[2] res (hash id -> "u|n|ts|wids"),
-- KEYS[3] resx (zset id by expiry), BASE..':e:'..wid (zset of a rolling
-- window's entries), BASE..':d:'..id (tombstone of a settled reservation).
-- ARGV: 1 now override or "", 2 key TTL (ms), 3 BASE, 4 number of limits.
--
-- Redis calls are the cost here, so state that every call needs lives in
-- the one meta hash (one HGETALL, one HSET), windows are pruned only when
-- their oldest entry has left, and reservations are expired only when the
-- earliest expiry has passed.
local B = 1000000000
local function norm(u, n)
  local c = math.floor(n / B)
  return u + c, n - c * B
end
-- '%d' is exact for every integer here (all below 2^53) and the cheapest
-- number-to-string conversion Lua 5.1 offers.
local function fmt(x) return string.format('%d', x) end
local function gt(au, an, bu, bn)
  if au ~= bu then return au > bu end
  return an > bn
end

-- ARGV[2] = "idle_ms:margin_ms": how long an untouched ledger with a
-- lifetime window is kept, and what is added to the length of rolling and
-- calendar windows (at least the reservation TTL).
local IDLE_MS, MARGIN_MS = string.match(ARGV[2], '^(%d+):(%d+)$')
IDLE_MS, MARGIN_MS = tonumber(IDLE_MS), tonumber(MARGIN_MS)
-- The script's time: the server's TIME (or ARGV[1], for tests); each ledger
-- then keeps its own time monotonic.
local NOW0
if ARGV[1] ~= '' then
  NOW0 = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  NOW0 = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Entries: "id|u|n|kind", kind h (held) or c (committed), scored by time.
local function member(id, u, n, kind) return id .. '|' .. fmt(u) .. '|' .. fmt(n) .. '|' .. kind end
local function parse_member(m)
  local id, u, n, kind = string.match(m, '^(.-)|(%-?%d+)|(%d+)|(%a)$')
  return id, tonumber(u), tonumber(n), kind
end
-- Reservations: "u|n|ts|wid,wid" (the windows the hold was counted in).
local function parse_res(rec)
  local u, n, ts, wids = string.match(rec, '^(%-?%d+)|(%d+)|(%d+)|(.*)$')
  local set = {}
  for w in string.gmatch(wids, '[^,]+') do set[w] = true end
  return tonumber(u), tonumber(n), tonumber(ts), set
end

-- Calendar windows: the start of the day / month containing t (µs), for a
-- fixed offset in minutes east of UTC (H. Hinnant's civil-date algorithms).
local DAY = 86400000000
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m
end
local function period_start(t, at)
  local off = t.off * 60000000
  local days = math.floor((at + off) / DAY)
  if t.cal == 'm' then
    local y, m = civil_from_days(days)
    days = days_from_civil(y, m, 1)
  end
  return days * DAY - off
end

-- Opens one ledger: reads its meta hash, prunes its windows, expires its
-- reservations, and returns its state and operations. A script may open
-- several ledgers (a hierarchy) and save each.
local function open_ledger(K_META, K_RES, K_RESX, BASE, now)
  local meta = {}
  local flat = redis.call('HGETALL', K_META)
  for i = 1, #flat, 2 do meta[flat[i]] = flat[i + 1] end
  local last = tonumber(meta['last'] or '0') or 0
  if last > now then now = last end -- time never goes backwards for one ledger

  -- TTLs: every key a call writes gets the ledger's TTL again (a key that
  -- lost its last member may be created anew by the next write).

  local written = {}
  local function touch(k) written[k] = true end

  -- Every window this ledger counts in: running totals and (rolling) entries.
  local tracks, by_wid = {}, {}
  local function load_track(wid, win)
    if by_wid[wid] then return by_wid[wid] end
    local cu, cn, ru, rn, old = string.match(meta[wid] or '0,0,0,0,', '^(%-?%d+),(%d+),(%-?%d+),(%d+),(%d*)$')
    local t = {
      wid = wid, win = win, ent = BASE .. ':e:' .. wid,
      cu = tonumber(cu), cn = tonumber(cn), ru = tonumber(ru), rn = tonumber(rn), old = tonumber(old),
    }
    if win < 0 then
      -- Calendar window: `old` is the current period's start; a new period
      -- starts from zero, exactly at the boundary.
      t.cal, t.off = string.sub(wid, 1, 1), tonumber(string.sub(wid, 2))
      local start = period_start(t, now)
      if t.old ~= start then t.cu, t.cn, t.ru, t.rn, t.old = 0, 0, 0, 0, start end
    end
    table.insert(tracks, t)
    by_wid[wid] = t
    return t
  end
  for spec in string.gmatch(meta['tracks'] or '', '[^,]+') do
    local wid, win = string.match(spec, '^(.*)|(%-?%d+)$')
    load_track(wid, tonumber(win))
  end
  local function ensure_track(wid, win) return load_track(wid, win) end

  local function add_entry(t, score, m)
    redis.call('ZADD', t.ent, fmt(score), m)
    touch(t.ent)
    if t.old == nil or score < t.old then t.old = score end
  end

  -- Prune what left each rolling window: only when its oldest entry left,
  -- and then only the leaving entries are read.
  for _, t in ipairs(tracks) do
    if t.win > 0 and t.old ~= nil and t.old < now - t.win then
      local cutoff = '(' .. fmt(now - t.win)
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', t.ent, '-inf', cutoff)) do
        local _, u, n, kind = parse_member(m)
        if kind == 'h' then t.ru, t.rn = norm(t.ru - u, t.rn - n)
        else t.cu, t.cn = norm(t.cu - u, t.cn - n) end
      end
      redis.call('ZREMRANGEBYSCORE', t.ent, '-inf', cutoff)
      local first = redis.call('ZRANGE', t.ent, 0, 0, 'WITHSCORES')
      t.old = first[2] and tonumber(first[2]) or nil
    end
  end

  -- Whether a hold made at `ts` still counts in window t (removing its entry
  -- from a rolling window's log when it does).
  local function take_hold(t, id, u, n, ts, wids)
    if not wids[t.wid] then return false end
    if t.win == 0 then return true end
    if t.win < 0 then return period_start(t, ts) == t.old end
    return redis.call('ZREM', t.ent, member(id, u, n, 'h')) == 1
  end
  local function drop_hold(id, u, n, ts, wids)
    for _, t in ipairs(tracks) do
      if take_hold(t, id, u, n, ts, wids) then t.ru, t.rn = norm(t.ru - u, t.rn - n) end
    end
  end

  -- Expire reservations whose TTL passed (their headroom returns); minexp is
  -- a lower bound of the earliest expiry, so most calls skip this.
  local minexp = tonumber(meta['minexp'] or '')
  if minexp ~= nil and minexp <= now then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_RESX, '-inf', fmt(now))) do
      local rec = redis.call('HGET', K_RES, id)
      if rec then
        local u, n, ts, wids = parse_res(rec)
        drop_hold(id, u, n, ts, wids)
        redis.call('HDEL', K_RES, id)
      end
    end
    redis.call('ZREMRANGEBYSCORE', K_RESX, '-inf', fmt(now))
    local first = redis.call('ZRANGE', K_RESX, 0, 0, 'WITHSCORES')
    minexp = first[2] and tonumber(first[2]) or nil
  end
  local function add_expiry(id, at)
    redis.call('ZADD', K_RESX, fmt(at), id)
    touch(K_RESX)
    if minexp == nil or at < minexp then minexp = at end
  end

  -- How long the ledger's keys must live after this write: as long as its
  -- longest window can still count what was written (a lifetime window:
  -- the idle TTL), so abandoned ledgers disappear.
  local function keep_ms()
    local keep = MARGIN_MS
    for _, t in ipairs(tracks) do
      local k
      if t.win == 0 then k = IDLE_MS
      elseif t.win > 0 then k = math.floor(t.win / 1000) + MARGIN_MS
      elseif t.cal == 'd' then k = DAY / 1000 + MARGIN_MS
      else k = 31 * DAY / 1000 + MARGIN_MS end
      if k > keep then keep = k end
    end
    return keep
  end

  -- Write the meta hash back and set the TTLs (see above).
  local function save()
    if #tracks == 0 then return end -- nothing to keep (e.g. status of an unknown ledger)
    local KEEP_MS = keep_ms()
    local specs = {}
    local fields = { 'last', fmt(now), 'minexp', minexp and fmt(minexp) or '' }
    for _, t in ipairs(tracks) do
      table.insert(specs, t.wid .. '|' .. fmt(t.win))
      table.insert(fields, t.wid)
      table.insert(fields, fmt(t.cu) .. ',' .. fmt(t.cn) .. ',' .. fmt(t.ru) .. ',' .. fmt(t.rn) .. ','
        .. (t.old and fmt(t.old) or ''))
    end
    table.insert(fields, 'tracks')
    table.insert(fields, table.concat(specs, ','))
    redis.call('HSET', K_META, unpack(fields))
    redis.call('PEXPIRE', K_META, KEEP_MS)
    for k in pairs(written) do redis.call('PEXPIRE', k, KEEP_MS) end
  end

  return {
    now = now, tracks = tracks, by_wid = by_wid, K_RES = K_RES, K_RESX = K_RESX,
    ensure_track = ensure_track, add_entry = add_entry, take_hold = take_hold,
    drop_hold = drop_hold, add_expiry = add_expiry, touch = touch, save = save,
  }
end

-- Charges one ledger: the cap with the least room decides; soft-limit
-- crossings are reported; with `record`, an admitted amount is recorded (as
-- a hold under `id`, or as spend). Returns the reply {admitted (1, 0, or P
-- for paused), limit_index, spent_u, spent_n, now, soft-limit bitmask}, or
-- nil and an error message.
local function charge_ledger(L, limits, au, an, id, hold, ttl, paused, record)
  local now = L.now
  if paused then return { 'P', '0', '0', '0', fmt(now), '0' } end
  local best, bu, bn, roomu, roomn
  for k, l in ipairs(limits) do
    local su, sn = norm(l.t.cu + l.t.ru, l.t.cn + l.t.rn)
    local ru, rn = norm(l.mu - su, l.mn - sn)
    if best == nil or gt(roomu, roomn, ru, rn) then
      best, bu, bn, roomu, roomn = k, su, sn, ru, rn
    end
  end
  if gt(au, an, roomu, roomn) then
    return { '0', tostring(best - 1), fmt(bu), fmt(bn), fmt(now), '0' }
  end
  -- Soft-limit crossings: spend from below the threshold to at or above it.
  local warnings = 0
  for k, l in ipairs(limits) do
    if l.wu >= 0 and k <= 53 then
      local su, sn = norm(l.t.cu + l.t.ru, l.t.cn + l.t.rn)
      local tu, tn = norm(su + au, sn + an)
      if gt(l.wu, l.wn, su, sn) and not gt(l.wu, l.wn, tu, tn) then
        warnings = warnings + 2 ^ (k - 1)
      end
    end
  end
  local reply = { '1', tostring(best - 1), fmt(bu), fmt(bn), fmt(now), fmt(warnings) }
  if not record then return reply end
  if hold then
    local wids = {}
    for _, t in ipairs(L.tracks) do table.insert(wids, t.wid) end
    local rec = fmt(au) .. '|' .. fmt(an) .. '|' .. fmt(now) .. '|' .. table.concat(wids, ',')
    if redis.call('HSETNX', L.K_RES, id, rec) == 0 then
      return nil, 'reservation id ' .. id .. ' is already in use'
    end
    L.touch(L.K_RES)
    L.add_expiry(id, now + ttl)
  end
  for _, t in ipairs(L.tracks) do
    if hold then t.ru, t.rn = norm(t.ru + au, t.rn + an)
    else t.cu, t.cn = norm(t.cu + au, t.cn + an) end
    if t.win > 0 then L.add_entry(t, now, member(id, au, an, hold and 'h' or 'c')) end
  end
  return reply
end

-- Reads one ledger's limits from ARGV starting at i: (wid, window_us,
-- max_u, max_n, warn_u, warn_n) each. Returns them and the next index.
local function read_limits(L, nl, i)
  local limits = {}
  for k = 1, nl do
    limits[k] = {
      t = L.ensure_track(ARGV[i], tonumber(ARGV[i + 1])), mu = tonumber(ARGV[i + 2]), mn = tonumber(ARGV[i + 3]),
      wu = tonumber(ARGV[i + 4]), wn = tonumber(ARGV[i + 5]), -- soft limit (wu < 0: none)
    }
    i = i + 6
  end
  return limits, i
end
