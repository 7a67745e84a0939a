-- settle: ARGV 7.. = per limit (wid, window_us), then id, reserved_u,
-- reserved_n, action (c commit / r release), actual_u, actual_n,
-- record_if_missing (0/1).
-- Returns {outcome, now}: 1 committed, 2 committed late, 3 released, 4 unknown.
local nl = tonumber(ARGV[6])
local i = 7
local lim = {}
for k = 1, nl do
  lim[k] = { ARGV[i], tonumber(ARGV[i + 1]) }
  i = i + 2
end
local id, eu, en = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
local action, au, an, rim = ARGV[i + 3], tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), ARGV[i + 6] == '1'

local function finish(code, remember)
  if remember then
    redis.call('HSET', K_DONE, id, tostring(code))
    redis.call('ZADD', K_DONEX, fmt(now), id)
  end
  save()
  return { tostring(code), fmt(now) }
end

-- Settled before: the owner retrying after a lost reply gets the same
-- answer (nothing is charged twice); anyone else gets "unknown".
local prev = redis.call('HGET', K_DONE, id)
if prev then
  if rim then return finish(tonumber(prev), false) end
  return finish(4, false)
end

local rec = redis.call('HGET', K_RES, id)
local held, u, n, ts, wids = false, nil, nil, nil, nil
if rec then
  u, n, ts, wids = parse_res(rec)
  held = (u == eu and n == en)
end

if action == 'r' then
  if not held then return finish(4, false) end
  drop_hold(id, u, n, wids)
  redis.call('HDEL', K_RES, id)
  redis.call('ZREM', K_RESX, id)
  return finish(3, true)
end

for k = 1, nl do ensure_track(lim[k][1], lim[k][2]) end
if held then
  redis.call('HDEL', K_RES, id)
  redis.call('ZREM', K_RESX, id)
  local late = false
  for _, t in ipairs(tracks) do
    local in_place = false
    if wids[t.wid] then
      if t.win == 0 then in_place = true
      else in_place = redis.call('ZREM', t.ent, member(id, u, n, 'h')) == 1 end
    end
    if in_place then
      -- Replace the hold by the actual, at the reservation's time.
      t.ru, t.rn = norm(t.ru - u, t.rn - n)
      t.cu, t.cn = norm(t.cu + au, t.cn + an)
      if t.win > 0 then redis.call('ZADD', t.ent, fmt(ts), member(id, au, an, 'c')) end
    else
      -- The hold left this window: the money was still spent; it counts from now.
      t.cu, t.cn = norm(t.cu + au, t.cn + an)
      if t.win > 0 then redis.call('ZADD', t.ent, fmt(now), member(id, au, an, 'c')) end
      late = true
    end
  end
  if late then return finish(2, true) end
  return finish(1, true)
end
if rec or not rim then return finish(4, false) end
-- Expired or never made (fail-open): record the spend now.
for _, t in ipairs(tracks) do
  t.cu, t.cn = norm(t.cu + au, t.cn + an)
  if t.win > 0 then redis.call('ZADD', t.ent, fmt(now), member(id, au, an, 'c')) end
end
return finish(2, true)
