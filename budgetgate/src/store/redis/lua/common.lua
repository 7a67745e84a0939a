-- budgetgate: shared prelude of every script (one script = one round trip).
--
-- Amounts are two limbs {u, n}: whole units and nano-units (0 <= n < 1e9),
-- so every number stays an exact integer below 2^53; nothing is a float sum.
-- Time is NOW0 (now.lua): the server's TIME in µs, or ARGV[1] in tests.
--
-- Keys (one hash tag per ledger): BASE..':meta', a hash holding everything a
-- call needs: 'h' (see HEAD below: the ledger's time, the earliest
-- reservation expiry, when the keys' TTLs run out and when they are renewed
-- next), the windows the ledger counts in and their states (see STATE
-- below), and per open reservation 'r:'..id (see REC below);
-- BASE..':e:'..wid (zset of a rolling window's entries); BASE..':d:'..id
-- (tombstone of a settled reservation). A ledger that counts in one window
-- (the common case) keeps it in 'h': HEAD, STATE, then the window's id, so
-- a call reads and writes one field; with more, 'h' is HEAD alone, 'tracks'
-- lists the wids (comma separated) and each <wid> field holds its STATE.
-- A window's id says its length: 'u' lifetime, 'r'..µs rolling, 'd'..offset
-- and 'm'..offset calendar days and months (offset in minutes east of UTC).
--
-- ARGV: 1 now override or "", 2 "idle_ms:margin_ms", then the script's
-- own. Numbers travel packed (P: little-endian i64s, read with struct) and
-- amounts also as their canonical text "u|n", which entries are built from:
-- a Lua number conversion costs more than the script's arithmetic.
--
-- Redis calls are the cost here (a script pays about 1 us per call and as
-- much again for its own set-up), so a call reads the fields it needs with
-- one HMGET and writes them back with one HSET; windows are pruned only when
-- their oldest entry has left, reservations are expired only when the
-- earliest expiry has passed, and TTLs are renewed about once an hour, not
-- on every call.
local B = 1000000000
-- The most log entries one call prunes from one window.
local PRUNE_MAX = 1000
local function norm(u, n)
  local c = math.floor(n / B)
  return u + c, n - c * B
end
-- '%d' is exact for every integer here (all below 2^53) and the cheapest
-- number-to-string conversion Lua 5.1 offers.
local function fmt(x) return string.format('%d', x) end
-- A window's state: committed {cu, cn}, reserved {ru, rn} and the time of
-- its oldest entry (-1: none), as five little-endian signed 64-bit integers
-- (struct: exact for these integers, and a tenth of the instructions of
-- parsing five decimal numbers).
local STATE = '<i8i8i8i8i8'
-- The ledger's header: last (its time, never going backwards), minexp (no
-- open reservation expires before it), exp (when the keys' TTLs run out),
-- ren (when they are renewed next); -1 for none.
local HEAD = '<i8i8i8i8'
-- A reservation: u, n, its time, its expiry, then the wids of the windows
-- it was counted in (comma separated).
local REC = '<i8i8i8i8'
-- A window's length in µs from its id: 0 lifetime, -1 calendar.
local function win_of(wid)
  local c = string.sub(wid, 1, 1)
  if c == 'u' then return 0 end
  if c == 'r' then return tonumber(string.sub(wid, 2)) end
  return -1
end
local function gt(au, an, bu, bn)
  if au ~= bu then return au > bu end
  return an > bn
end

-- ARGV[2] = "idle_ms:margin_ms": how long an untouched ledger with a
-- lifetime window is kept, and what is added to the length of rolling and
-- calendar windows (at least the reservation TTL).
-- (Read only when TTLs are renewed.)
local function keep_limits()
  local idle, margin = string.match(ARGV[2], '^(%d+):(%d+)$')
  return tonumber(idle), tonumber(margin)
end

-- Entries: "id|u|n|kind", kind h (held) or c (committed), scored by time.
local function member(id, u, n, kind) return id .. '|' .. fmt(u) .. '|' .. fmt(n) .. '|' .. kind end
local function parse_member(m)
  local id, u, n, kind = string.match(m, '^(.-)|(%-?%d+)|(%d+)|(%a)$')
  return id, tonumber(u), tonumber(n), kind
end
-- Reservations: REC, then the windows the hold was counted in.
local function parse_res(rec)
  local u, n, ts, exp = struct.unpack(REC, rec)
  local set = {}
  for w in string.gmatch(string.sub(rec, 33), '[^,]+') do set[w] = true end
  return u, n, ts, set, exp
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

-- Opens one ledger: reads what the call needs from its meta hash (the
-- windows `want` = {{wid, win}, ...} the request names, and reservation `rid`
-- if given), prunes its windows, expires its reservations, and returns its
-- state and operations. A script may open several ledgers and save each.
local function open_ledger(K_META, now, want, rid)
  local BASE = string.sub(K_META, 1, -6)
  local vals
  local nw = #want
  -- One window (the common case) needs no field list. (The fast paths
  -- ask for 'h' first, this code for 'tracks': tests tell them apart.)
  if nw == 1 and rid then
    vals = redis.call('HMGET', K_META, 'tracks', 'h', want[1][1], 'r:' .. rid)
  elseif nw == 1 then
    vals = redis.call('HMGET', K_META, 'tracks', 'h', want[1][1])
  else
    local fields = { 'tracks', 'h' }
    for _, w in ipairs(want) do fields[#fields + 1] = w[1] end
    if rid then fields[#fields + 1] = 'r:' .. rid end
    vals = redis.call('HMGET', K_META, unpack(fields))
  end
  local raw = {}
  for k = 1, nw do raw[want[k][1]] = vals[2 + k] end
  local rec = rid and vals[3 + nw] or false
  local spec = vals[1] or ''
  local last, minexp, exp, ren = 0, -1, -1, -1
  local head = vals[2]
  local single = false -- one window, kept in 'h'
  if head then
    last, minexp, exp, ren = struct.unpack(HEAD, head)
    if #head > 32 then
      single = true
      spec = string.sub(head, 73)
      raw[spec] = string.sub(head, 33, 72)
    end
  end
  if last > now then now = last end -- time never goes backwards for one ledger
  local now_s = fmt(now)
  if minexp < 0 then minexp = nil end
  if exp < 0 then exp = nil end
  if ren < 0 then ren = nil end

  -- Keys a call creates (a rolling window's first entry) expire with the rest.
  local created = nil
  local grown = false -- a window was added: the TTL may have to grow
  local changed_minexp = false

  -- Every window this ledger counts in: running totals and (rolling) entries.
  local tracks, by_wid = {}, {}
  local function load_track(wid, win, value)
    local cu, cn, ru, rn, old = 0, 0, 0, 0, -1
    if value then cu, cn, ru, rn, old = struct.unpack(STATE, value) end
    local t = {
      wid = wid, win = win, ent = win > 0 and BASE .. ':e:' .. wid or nil,
      cu = cu, cn = cn, ru = ru, rn = rn, old = old >= 0 and old or nil,
    }
    if not value and win > 0 and not head and redis.call('EXISTS', t.ent) == 1 then
      -- The ledger's totals were lost but its rolling log was not (a
      -- partial key loss): rebuild the window from the log (once), so the
      -- spend it holds still counts and pruning never goes below zero.
      for _, m in ipairs(redis.call('ZRANGE', t.ent, 0, -1)) do
        local _, u, n, kind = parse_member(m)
        if kind == 'h' then t.ru, t.rn = norm(t.ru + u, t.rn + n)
        else t.cu, t.cn = norm(t.cu + u, t.cn + n) end
      end
      local first = redis.call('ZRANGE', t.ent, 0, 0, 'WITHSCORES')
      t.old = first[2] and tonumber(first[2]) or nil
      redis.log(redis.LOG_WARNING, 'budgetgate: ' .. BASE .. ' lost its totals; window ' .. wid .. ' rebuilt from its log')
    end
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
  -- Windows the request did not name (a budget changed since) are read in a
  -- second HMGET; that is rare.
  if nw == 1 and spec == want[1][1] then
    -- The ledger counts in exactly the one window asked for (the common
    -- case): nothing to parse.
    load_track(want[1][1], want[1][2], raw[want[1][1]])
  else
    local listed, missing = {}, {}
    for wid in string.gmatch(spec, '[^,]+') do
      listed[#listed + 1] = { wid, win_of(wid) }
      if raw[wid] == nil then missing[#missing + 1] = wid end
    end
    if #missing > 0 then
      local more = redis.call('HMGET', K_META, unpack(missing))
      for k, wid in ipairs(missing) do raw[wid] = more[k] end
    end
    for _, l in ipairs(listed) do load_track(l[1], l[2], raw[l[1]]) end
  end
  local tracks_n = #tracks -- as stored; more means the spec must be written
  local function ensure_track(wid, win)
    if by_wid[wid] then return by_wid[wid] end
    grown = true
    return load_track(wid, win, nil)
  end

  local function add_entry(t, score, m)
    if t.old == nil then
      created = created or {}
      created[#created + 1] = t.ent
    end
    redis.call('ZADD', t.ent, fmt(score), m)
    if t.old == nil or score < t.old then t.old = score end
  end

  -- Prune what left each rolling window: only when its oldest entry left,
  -- and then only the leaving entries are read — at most PRUNE_MAX per
  -- call, so one call's work is bounded however much leaves at once; what
  -- is not pruned yet stays counted (which can only block early) and the
  -- next calls go on. Totals never go below zero: a log that lost entries
  -- (a partial key loss) ends as an empty window, not a negative one.
  for _, t in ipairs(tracks) do
    if t.win > 0 and t.old ~= nil and t.old < now - t.win then
      local cutoff = '(' .. fmt(now - t.win)
      local leaving = redis.call('ZRANGEBYSCORE', t.ent, '-inf', cutoff, 'LIMIT', 0, PRUNE_MAX)
      for _, m in ipairs(leaving) do
        local _, u, n, kind = parse_member(m)
        if kind == 'h' then t.ru, t.rn = norm(t.ru - u, t.rn - n)
        else t.cu, t.cn = norm(t.cu - u, t.cn - n) end
      end
      if #leaving > 0 then redis.call('ZREMRANGEBYRANK', t.ent, 0, #leaving - 1) end
      local first = redis.call('ZRANGE', t.ent, 0, 0, 'WITHSCORES')
      t.old = first[2] and tonumber(first[2]) or nil
      local lost = t.cu < 0 or t.ru < 0 or (t.old == nil and (t.cu ~= 0 or t.cn ~= 0 or t.ru ~= 0 or t.rn ~= 0))
      if lost then
        -- Nothing left in the log, or less than the totals say: what the
        -- log no longer holds cannot count.
        redis.log(redis.LOG_WARNING, 'budgetgate: ' .. BASE .. ' window ' .. t.wid .. ' lost log entries; totals reset from the log')
        if t.cu < 0 or t.old == nil then t.cu, t.cn = 0, 0 end
        if t.ru < 0 or t.old == nil then t.ru, t.rn = 0, 0 end
      end
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

  -- Expire reservations whose TTL passed (their headroom returns). minexp
  -- is a lower bound of the earliest expiry, so this runs about once per
  -- reservation TTL, and then reads the whole hash once.
  if minexp ~= nil and minexp <= now then
    local flat = redis.call('HGETALL', K_META)
    local gone = {}
    minexp, changed_minexp = nil, true
    for k = 1, #flat, 2 do
      local f = flat[k]
      if string.sub(f, 1, 2) == 'r:' then
        local u, n, ts, wids, e = parse_res(flat[k + 1])
        if e <= now then
          drop_hold(string.sub(f, 3), u, n, ts, wids)
          gone[#gone + 1] = f
          if rid and f == 'r:' .. rid then rec = false end
        elseif minexp == nil or e < minexp then
          minexp = e
        end
      end
    end
    if #gone > 0 then redis.call('HDEL', K_META, unpack(gone)) end
  end

  -- How long the ledger's keys must live after this write: as long as its
  -- longest window can still count what was written (a lifetime window:
  -- the idle TTL), so abandoned ledgers disappear.
  local function keep_ms()
    local idle, margin = keep_limits()
    local keep = margin
    for _, t in ipairs(tracks) do
      local k
      if t.win == 0 then k = idle
      elseif t.win > 0 then k = math.floor(t.win / 1000) + margin
      elseif t.cal == 'd' then k = DAY / 1000 + margin
      else k = 31 * DAY / 1000 + margin end
      if k > keep then keep = k end
    end
    return keep
  end

  local L = { tracks = tracks, by_wid = by_wid, K_META = K_META, BASE = BASE }
  L.now, L.now_s, L.rec, L.extra = now, now_s, rec, {}
  L.ensure_track, L.add_entry, L.take_hold, L.drop_hold = ensure_track, add_entry, take_hold, drop_hold
  function L.res_added(at)
    if minexp == nil or at < minexp then minexp, changed_minexp = at, true end
  end

  -- Writes the meta hash back (with L.extra: more field/value pairs) and
  -- keeps the TTLs: every key of the ledger expires at `exp`, renewed when
  -- less than the needed time minus an hour is left (so about hourly), or
  -- when a window was added.
  function L.save()
    if #tracks == 0 and #L.extra == 0 then return end -- nothing to keep (status of an unknown ledger)
    -- Renewed an hour after the last renewal (half the time for short
    -- needs), so the keys always have the needed time minus at most that.
    local renew = exp == nil or ren == nil or grown or now >= ren
    if renew then
      local keep_us = keep_ms() * 1000
      exp, ren = now + keep_us, now + math.min(3600000000, math.floor(keep_us / 2))
    end
    local out
    if #tracks == 1 then
      local t = tracks[1]
      out = { 'h', struct.pack(HEAD .. 'i8i8i8i8i8', now, minexp or -1, exp, ren, t.cu, t.cn, t.ru, t.rn, t.old or -1) .. t.wid }
    else
      out = { 'h', struct.pack(HEAD, now, minexp or -1, exp, ren) }
      for _, t in ipairs(tracks) do
        out[#out + 1] = t.wid
        out[#out + 1] = struct.pack(STATE, t.cu, t.cn, t.ru, t.rn, t.old or -1)
      end
      -- Windows never go away: 'tracks' changes only when one is added.
      if #tracks ~= tracks_n or spec == '' or single then
        local specs = {}
        for _, t in ipairs(tracks) do specs[#specs + 1] = t.wid end
        out[#out + 1] = 'tracks'
        out[#out + 1] = table.concat(specs, ',')
      end
    end
    for _, v in ipairs(L.extra) do out[#out + 1] = v end
    redis.call('HSET', K_META, unpack(out))
    -- Relative to the script's time (the server's, or a test's clock).
    if renew or created then
      local ttl = fmt(math.max(1, math.floor((exp - now) / 1000)))
      if renew then
        redis.call('PEXPIRE', K_META, ttl)
        for _, t in ipairs(tracks) do
          if t.win > 0 and t.old ~= nil then redis.call('PEXPIRE', t.ent, ttl) end
        end
      else
        for _, k in ipairs(created) do redis.call('PEXPIRE', k, ttl) end
      end
    end
  end
  return L
end

-- Whether a soft-limit threshold {wu, wn} of window t, crossed now, is
-- reported: once per window — per calendar period, per rolling window
-- length, once for a lifetime window. Remembered in a key of the ledger's
-- own (same hash tag), which expires when the threshold may be reported
-- again. Runs only on a crossing, which is rare.
local function first_warning(L, t, wu, wn)
  local key = L.BASE .. ':w:' .. t.wid .. ':' .. fmt(wu) .. '.' .. fmt(wn)
  local ms
  if t.win > 0 then
    -- Rolling: the key holds when it was last reported (script time, which
    -- tests set; its TTL only cleans up).
    local prev = redis.call('GET', key)
    if prev and L.now - tonumber(prev) < t.win then return false end
    redis.call('SET', key, L.now_s, 'PX', fmt(math.max(1, math.floor(t.win / 1000))))
    return true
  elseif t.win == 0 then
    ms = keep_limits()
  else
    key = key .. ':' .. fmt(t.old)
    ms = (t.cal == 'd' and DAY or 32 * DAY) / 1000
  end
  return redis.call('SET', key, '1', 'NX', 'PX', fmt(math.max(1, ms))) ~= false
end

-- Why a write under `id` must be refused before anything is recorded: the
-- id is held already, or was settled or cancelled before this request
-- arrived (a request whose outcome the client gave up on: refused, so it
-- cannot hold or spend money after the client took it back). Nil if none.
-- (Reads only: a hierarchy checks every ledger before it records any.)
local function refused_id(L, id, hold, mark)
  if hold and L.rec then return 'reservation id ' .. id .. ' is already in use' end
  if (hold or mark) and redis.call('EXISTS', L.BASE .. ':d:' .. id) == 1 then
    return 'reservation id ' .. id .. ' was cancelled'
  end
  return nil
end

-- Claims the tombstone of a fixed cost about to be recorded under an id:
-- '6|time|wids' (the windows it is counted in), kept `ttl` µs, so a settle
-- by id can confirm it (a commit: counted once) or take it back (a
-- cancel). One SET NX both checks and writes it: false if the id was
-- settled or cancelled before this request arrived.
local function claim_fixed(L, id, ttl)
  local wids = {}
  for _, t in ipairs(L.tracks) do wids[#wids + 1] = t.wid end
  return redis.call('SET', L.BASE .. ':d:' .. id, '6|' .. L.now_s .. '|' .. table.concat(wids, ','),
    'NX', 'PX', fmt(math.max(1, math.floor(ttl / 1000)))) ~= false
end

-- Charges one ledger: the cap with the least room decides; soft-limit
-- crossings are reported; with `record`, an admitted amount is recorded (as
-- a hold under `id`, or as spend, remembered under `id` with `mark`).
-- Returns the reply {admitted (1 or 0), limit_index, spent_u, spent_n,
-- now, soft-limit bitmask}, or nil and an error message.
local function charge_ledger(L, limits, au, an, id, hold, ttl, record, mark)
  local now = L.now
  local best, bu, bn, roomu, roomn
  for k, l in ipairs(limits) do
    local su, sn = norm(l.t.cu + l.t.ru, l.t.cn + l.t.rn)
    local ru, rn = norm(l.mu - su, l.mn - sn)
    if best == nil or gt(roomu, roomn, ru, rn) then
      best, bu, bn, roomu, roomn = k, su, sn, ru, rn
    end
  end
  if gt(au, an, roomu, roomn) then
    return { '0', tostring(best - 1), fmt(bu), fmt(bn), L.now_s, '0' }
  end
  -- An id in use, settled or cancelled is refused before anything (a
  -- soft-limit report included) is written.
  if record then
    local refused = refused_id(L, id, hold, false)
    if not refused and mark and not claim_fixed(L, id, ttl) then
      refused = 'reservation id ' .. id .. ' was cancelled'
    end
    if refused then return nil, refused end
  end
  -- Soft-limit crossings: spend from below the threshold to at or above it,
  -- reported once per window (and only by a charge that is recorded).
  local warnings = 0
  for k, l in ipairs(limits) do
    if record and l.wu >= 0 and k <= 53 then
      local su, sn = norm(l.t.cu + l.t.ru, l.t.cn + l.t.rn)
      local tu, tn = norm(su + au, sn + an)
      if gt(l.wu, l.wn, su, sn) and not gt(l.wu, l.wn, tu, tn) and first_warning(L, l.t, l.wu, l.wn) then
        warnings = warnings + 2 ^ (k - 1)
      end
    end
  end
  local reply = { '1', tostring(best - 1), fmt(bu), fmt(bn), L.now_s, warnings == 0 and '0' or fmt(warnings) }
  if not record then return reply end
  if hold then
    local wids = {}
    for _, t in ipairs(L.tracks) do table.insert(wids, t.wid) end
    local rec = struct.pack(REC, au, an, now, now + ttl) .. table.concat(wids, ',')
    L.extra[#L.extra + 1] = 'r:' .. id
    L.extra[#L.extra + 1] = rec
    L.rec = rec
    L.res_added(now + ttl)
  end
  for _, t in ipairs(L.tracks) do
    if hold then t.ru, t.rn = norm(t.ru + au, t.rn + an)
    else t.cu, t.cn = norm(t.cu + au, t.cn + an) end
    if t.win > 0 then L.add_entry(t, now, member(id, au, an, hold and 'h' or 'c')) end
  end
  return reply
end

-- A charge's arguments from ARGV[i], for the ledger whose meta hash is
-- `key`: P = (number of limits nl, per limit window_us, max_u, max_n,
-- warn_u, warn_n (warn_u < 0: no soft limit), amount_u, amount_n, hold 0/1,
-- ttl_us); the amount "u|n"; the id; the nl wids. Returns the charge and the index after it.
local function read_charge(i, key)
  local P = ARGV[i]
  local nl, pos = struct.unpack('<i8', P)
  local c = { key = key, id = ARGV[i + 2], want = {}, limits = {} }
  for k = 1, nl do
    local win, mu, mn, wu, wn
    win, mu, mn, wu, wn, pos = struct.unpack('<i8i8i8i8i8', P, pos)
    c.want[k] = { ARGV[i + 2 + k], win }
    c.limits[k] = { mu = mu, mn = mn, wu = wu, wn = wn }
  end
  local hold
  c.au, c.an, hold, c.ttl = struct.unpack('<i8i8i8i8', P, pos)
  -- 1: a hold (ttl: the reservation's); 2: a fixed cost remembered under
  -- its id (ttl: the settled retention); 0: a fixed cost.
  c.hold, c.mark = hold == 1, hold == 2
  return c, i + 3 + nl
end

-- Opens a charge's ledger (a hold reads its id's field too: ids must be
-- new) and ties its limits to the ledger's windows.
local function open_charge(c)
  local L = open_ledger(c.key, NOW0, c.want, c.hold and c.id or nil)
  for k, w in ipairs(c.want) do c.limits[k].t = L.ensure_track(w[1], w[2]) end
  return L
end

-- The windows of a settle or status: P (at ARGV[3]) holds nl and then nl
-- window lengths; their wids are ARGV[first..]. Returns them and P's
-- position after them.
local function read_windows(first)
  local P = ARGV[3]
  local nl, pos = struct.unpack('<i8', P)
  local want = {}
  for k = 1, nl do
    local win
    win, pos = struct.unpack('<i8', P, pos)
    want[k] = { ARGV[first + k - 1], win }
  end
  return want, pos
end
