-- charge: KEYS[4] = the pause hash. ARGV 5.. = per limit (wid, window_us,
-- max_u, max_n, warn_u, warn_n), then amount_u, amount_n, id, hold (0/1), ttl_us, the
-- namespace's and the ledger's pause fields.
-- Returns {admitted (1, 0, or P for paused), limit_index, spent_u, spent_n,
-- now, soft-limit bitmask}.
local nl = tonumber(ARGV[4])
local i = 5
local limits = {}
for k = 1, nl do
  limits[k] = {
    t = ensure_track(ARGV[i], tonumber(ARGV[i + 1])), mu = tonumber(ARGV[i + 2]), mn = tonumber(ARGV[i + 3]),
    wu = tonumber(ARGV[i + 4]), wn = tonumber(ARGV[i + 5]), -- soft limit (wu < 0: none)
  }
  i = i + 6
end
local au, an, id, hold, ttl = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3] == '1', tonumber(ARGV[i + 4])

-- The kill switch (KEYS[4], shared by every ledger): everything, the
-- namespace, or this ledger.
local pause = redis.call('HMGET', KEYS[4], '*', ARGV[i + 5], ARGV[i + 6])
if pause[1] or pause[2] or pause[3] then
  save()
  return { 'P', '0', '0', '0', fmt(now), '0' }
end

-- The cap with the least room: the one that blocks (if any does), or the
-- binding one.
local best, bu, bn, roomu, roomn
for k, l in ipairs(limits) do
  local su, sn = norm(l.t.cu + l.t.ru, l.t.cn + l.t.rn)
  local ru, rn = norm(l.mu - su, l.mn - sn)
  if best == nil or gt(roomu, roomn, ru, rn) then
    best, bu, bn, roomu, roomn = k, su, sn, ru, rn
  end
end
if gt(au, an, roomu, roomn) then
  save()
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
if hold then
  local wids = {}
  for _, t in ipairs(tracks) do table.insert(wids, t.wid) end
  local rec = fmt(au) .. '|' .. fmt(an) .. '|' .. fmt(now) .. '|' .. table.concat(wids, ',')
  if redis.call('HSETNX', K_RES, id, rec) == 0 then
    save() -- scripts are not rolled back: keep the pruning consistent
    return redis.error_reply('reservation id ' .. id .. ' is already in use')
  end
  touch(K_RES)
  add_expiry(id, now + ttl)
end
for _, t in ipairs(tracks) do
  if hold then t.ru, t.rn = norm(t.ru + au, t.rn + an)
  else t.cu, t.cn = norm(t.cu + au, t.cn + an) end
  if t.win > 0 then add_entry(t, now, member(id, au, an, hold and 'h' or 'c')) end
end
save()
return { '1', tostring(best - 1), fmt(bu), fmt(bn), fmt(now), fmt(warnings) }
