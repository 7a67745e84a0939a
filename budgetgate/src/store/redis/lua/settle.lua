-- settle: KEYS[4] = the reservation's tombstone. ARGV 5.. = per limit
-- (wid, window_us), then id, reserved_u, reserved_n, action (c commit /
-- r release), actual_u, actual_n, record_if_missing (0/1), retention_ms.
-- Returns {outcome, now}: 1 committed, 2 committed late, 3 released, 4 unknown.
local L = open_ledger(KEYS[1], KEYS[2], KEYS[3], ARGV[3], NOW0)
local now, tracks, by_wid, K_RES, K_RESX = L.now, L.tracks, L.by_wid, L.K_RES, L.K_RESX
local ensure_track, add_entry, take_hold, drop_hold, save = L.ensure_track, L.add_entry, L.take_hold, L.drop_hold, L.save
local K_DONE = KEYS[4]
local nl = tonumber(ARGV[4])
local i = 5
local lim = {}
for k = 1, nl do
  lim[k] = { ARGV[i], tonumber(ARGV[i + 1]) }
  i = i + 2
end
local id, eu, en = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
local action, au, an = ARGV[i + 3], tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
local rim, retention = ARGV[i + 6] == '1', ARGV[i + 7]

local function finish(code, remember)
  if remember then redis.call('SET', K_DONE, tostring(code), 'PX', retention) end
  save()
  return { tostring(code), fmt(now) }
end

local rec = redis.call('HGET', K_RES, id)
local held, u, n, ts, wids = false, nil, nil, nil, nil
if rec then
  u, n, ts, wids = parse_res(rec)
  held = (u == eu and n == en)
end

if not held then
  -- Settled before: the owner retrying after a lost reply gets the same
  -- answer (nothing is charged twice); anyone else gets "unknown".
  local prev = redis.call('GET', K_DONE)
  if prev then
    if rim then return finish(tonumber(prev), false) end
    return finish(4, false)
  end
  if action == 'r' or rec or not rim then return finish(4, false) end
  -- Expired or never made (fail-open): the money was spent; record it now.
  for k = 1, nl do ensure_track(lim[k][1], lim[k][2]) end
  for _, t in ipairs(tracks) do
    t.cu, t.cn = norm(t.cu + au, t.cn + an)
    if t.win > 0 then add_entry(t, now, member(id, au, an, 'c')) end
  end
  return finish(2, true)
end

redis.call('HDEL', K_RES, id)
redis.call('ZREM', K_RESX, id)
if action == 'r' then
  drop_hold(id, u, n, ts, wids)
  return finish(3, true)
end
for k = 1, nl do ensure_track(lim[k][1], lim[k][2]) end
local late = false
for _, t in ipairs(tracks) do
  if take_hold(t, id, u, n, ts, wids) then
    -- Replace the hold by the actual, at the reservation's time.
    t.ru, t.rn = norm(t.ru - u, t.rn - n)
    t.cu, t.cn = norm(t.cu + au, t.cn + an)
    if t.win > 0 then add_entry(t, ts, member(id, au, an, 'c')) end
  else
    -- The hold left this window: the money was still spent; it counts from now.
    t.cu, t.cn = norm(t.cu + au, t.cn + an)
    if t.win > 0 then add_entry(t, now, member(id, au, an, 'c')) end
    late = true
  end
end
if late then return finish(2, true) end
return finish(1, true)
