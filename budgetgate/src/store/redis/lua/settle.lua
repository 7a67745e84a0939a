-- settle: KEYS[1] = the ledger's meta hash, KEYS[2] = the reservation's
-- tombstone. ARGV 3 = P (number of limits, each one's window_us,
-- reserved_u, reserved_n, actual_u, actual_n, commit (1), release (0) or
-- cancel (2), record_if_missing 0/1), 4 = id, 5 = reserved "u|n", 6 =
-- actual "u|n", 7 = retention_ms, 8.. = the limits' wids.
-- Returns {outcome, now}: 1 committed, 2 committed late, 3 released, 4 unknown.
-- The tombstone holds the outcome (5: cancelled before the hold arrived:
-- charge refuses a hold whose id has a tombstone; '6|time|wids': a fixed
-- cost recorded under this id, see mark_fixed in common.lua).
local want, pos = read_windows(8)
local eu, en, au, an, commit, rim = struct.unpack('<i8i8i8i8i8i8', ARGV[3], pos)
local action = commit == 1 and 'c' or (commit == 2 and 'x' or 'r')
local id, retention = ARGV[4], ARGV[7]
rim = rim == 1
local L = open_ledger(KEYS[1], NOW0, want, id)
local now, tracks = L.now, L.tracks
local K_DONE = KEYS[2]

local function finish(code, remember)
  if remember then redis.call('SET', K_DONE, tostring(code), 'PX', retention) end
  L.save()
  return { tostring(code), L.now_s }
end

local rec = L.rec
local held, u, n, ts, wids = false, nil, nil, nil, nil
if rec then
  u, n, ts, wids = parse_res(rec)
  held = (u == eu and n == en)
end

if not held then
  -- Settled before: the owner retrying after a lost reply gets the same
  -- answer (nothing is charged twice); anyone else gets "unknown".
  local prev = redis.call('GET', K_DONE)
  if prev and string.sub(prev, 1, 2) == '6|' then
    -- A fixed cost recorded under this id. A commit (the call ran)
    -- confirms it: counted once. A cancel (the call did not run) takes it
    -- back from every window it still counts in.
    if action == 'c' then return finish(1, false) end
    if action ~= 'x' then return finish(4, false) end
    local ts, list = string.match(prev, '^6|(%-?%d+)|(.*)$')
    ts = tonumber(ts)
    local counted = {}
    for w in string.gmatch(list or '', '[^,]+') do counted[w] = true end
    for _, t in ipairs(tracks) do
      if counted[t.wid] and ts then
        local counts
        if t.win == 0 then counts = true
        elseif t.win < 0 then counts = period_start(t, ts) == t.old
        else counts = redis.call('ZREM', t.ent, member(id, eu, en, 'c')) == 1 end
        if counts then
          t.cu, t.cn = norm(t.cu - eu, t.cn - en)
          if t.cu < 0 then t.cu, t.cn = 0, 0 end -- never below zero (a partial key loss)
        end
      end
    end
    return finish(3, true)
  end
  -- A commit after its reservation was cancelled (its outcome was unknown
  -- and the call ran anyway, fail-open): the money was spent; record it.
  if prev == '5' and action == 'c' and rim then prev = nil end
  if prev then
    if rim then return finish(tonumber(prev), false) end
    return finish(4, false)
  end
  if action == 'x' and not rec then
    -- Nothing held yet: the reservation may still arrive; refuse it then.
    redis.call('SET', K_DONE, '5', 'PX', retention)
    return finish(4, false)
  end
  if action ~= 'c' or rec or not rim then return finish(4, false) end
  -- Expired or never made (fail-open): the money was spent; record it now.
  for _, w in ipairs(want) do L.ensure_track(w[1], w[2]) end
  for _, t in ipairs(tracks) do
    t.cu, t.cn = norm(t.cu + au, t.cn + an)
    if t.win > 0 then L.add_entry(t, now, member(id, au, an, 'c')) end
  end
  return finish(2, true)
end

redis.call('HDEL', L.K_META, 'r:' .. id)
if action ~= 'c' then
  L.drop_hold(id, u, n, ts, wids)
  return finish(3, true)
end
for _, w in ipairs(want) do L.ensure_track(w[1], w[2]) end
local late = false
for _, t in ipairs(tracks) do
  if L.take_hold(t, id, u, n, ts, wids) then
    -- Replace the hold by the actual, at the reservation's time.
    t.ru, t.rn = norm(t.ru - u, t.rn - n)
    t.cu, t.cn = norm(t.cu + au, t.cn + an)
    if t.win > 0 then L.add_entry(t, ts, member(id, au, an, 'c')) end
  else
    -- The hold left this window: the money was still spent; it counts from now.
    t.cu, t.cn = norm(t.cu + au, t.cn + an)
    if t.win > 0 then L.add_entry(t, now, member(id, au, an, 'c')) end
    late = true
  end
end
if late then return finish(2, true) end
return finish(1, true)
