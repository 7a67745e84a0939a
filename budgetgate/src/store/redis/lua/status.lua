-- status: KEYS[1] = the ledger's meta hash. ARGV 3 = BASE, 4 = number of
-- limits, 5.. = per limit (wid, window_us).
-- Returns per limit committed_u, committed_n, reserved_u, reserved_n; then now.
local nl = tonumber(ARGV[4])
local L = open_ledger(ARGV[3], NOW0, wanted(nl, 5, 2), nil)
local out = {}
local i = 5
for _ = 1, nl do
  local t = L.by_wid[ARGV[i]]
  if t then
    table.insert(out, fmt(t.cu)); table.insert(out, fmt(t.cn))
    table.insert(out, fmt(t.ru)); table.insert(out, fmt(t.rn))
  else
    for _ = 1, 4 do table.insert(out, '0') end
  end
  i = i + 2
end
L.save()
table.insert(out, fmt(L.now))
return out
