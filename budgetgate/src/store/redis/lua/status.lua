-- status: ARGV 5.. = per limit (wid, window_us).
-- Returns per limit committed_u, committed_n, reserved_u, reserved_n; then now.
local L = open_ledger(KEYS[1], KEYS[2], KEYS[3], ARGV[3], NOW0)
local now, tracks, by_wid, K_RES, K_RESX = L.now, L.tracks, L.by_wid, L.K_RES, L.K_RESX
local ensure_track, add_entry, take_hold, drop_hold, save = L.ensure_track, L.add_entry, L.take_hold, L.drop_hold, L.save
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
