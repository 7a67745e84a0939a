-- status: KEYS[1] = the ledger's meta hash. ARGV 3 = P (number of limits,
-- then each one's window_us), 4.. = their wids.
-- Returns per limit committed_u, committed_n, reserved_u, reserved_n; then now.
local want = read_windows(4)
local L = open_ledger(KEYS[1], NOW0, want, nil)
local out = {}
for _, w in ipairs(want) do
  local t = L.by_wid[w[1]]
  -- A rolling log without totals (they were lost): rebuilt, as a charge
  -- would (common.lua's load_track).
  if not t and w[2] > 0 and redis.call('EXISTS', L.BASE .. ':e:' .. w[1]) == 1 then
    t = L.ensure_track(w[1], w[2])
  end
  if t then
    table.insert(out, fmt(t.cu)); table.insert(out, fmt(t.cn))
    table.insert(out, fmt(t.ru)); table.insert(out, fmt(t.rn))
  else
    for _ = 1, 4 do table.insert(out, '0') end
  end
end
L.save()
table.insert(out, fmt(L.now))
return out
