-- status: ARGV 5.. = per limit (wid, window_us).
-- Returns per limit committed_u, committed_n, reserved_u, reserved_n; then now.
local nl = tonumber(ARGV[4])
local i = 5
local out = {}
for k = 1, nl do
  local t = by_wid[ARGV[i]]
  if t then
    table.insert(out, fmt(t.cu)); table.insert(out, fmt(t.cn))
    table.insert(out, fmt(t.ru)); table.insert(out, fmt(t.rn))
  else
    for _ = 1, 4 do table.insert(out, '0') end
  end
  i = i + 2
end
save()
table.insert(out, fmt(now))
return out
