-- charge_many: a hierarchy, all or nothing, in one script.
-- KEYS[1] = the pause hash, then per ledger its meta hash.
-- ARGV 3 = number of ledgers; then per ledger: BASE, number of limits, the
-- limits (6 each), amount_u, amount_n, id, hold (0/1), ttl_us, the
-- namespace's and the ledger's pause fields.
-- Returns {'A', then each ledger's 6-field reply} when every ledger fitted
-- and was recorded, or {'R', index (0-based), its 6-field reply} when one
-- was refused and nothing was recorded.
local n = tonumber(ARGV[3])
local i = 4
local ledgers = {}
for j = 1, n do
  local nl = tonumber(ARGV[i + 1])
  local e = i + 2 + nl * 6 -- this ledger's amount_u
  local hold = ARGV[e + 3] == '1'
  local L = open_ledger(ARGV[i], NOW0, wanted(nl, i + 2, 6), hold and ARGV[e + 2] or nil)
  local limits
  limits, i = read_limits(L, nl, i + 2)
  local c = {
    L = L, limits = limits, au = tonumber(ARGV[i]), an = tonumber(ARGV[i + 1]),
    id = ARGV[i + 2], hold = ARGV[i + 3] == '1', ttl = tonumber(ARGV[i + 4]),
  }
  local pause = redis.call('HMGET', KEYS[1], '*', ARGV[i + 5], ARGV[i + 6])
  c.paused = pause[1] or pause[2] or pause[3]
  i = i + 7
  ledgers[j] = c
end
local function save_all()
  for _, c in ipairs(ledgers) do c.L.save() end
end
-- Every ledger must fit before any is recorded.
for j, c in ipairs(ledgers) do
  local reply = charge_ledger(c.L, c.limits, c.au, c.an, c.id, c.hold, c.ttl, c.paused, false)
  if reply[1] ~= '1' then
    save_all()
    local out = { 'R', tostring(j - 1) }
    for _, v in ipairs(reply) do table.insert(out, v) end
    return out
  end
end
local out = { 'A' }
for _, c in ipairs(ledgers) do
  local reply, err = charge_ledger(c.L, c.limits, c.au, c.an, c.id, c.hold, c.ttl, false, true)
  if err then
    save_all()
    return redis.error_reply(err)
  end
  for _, v in ipairs(reply) do table.insert(out, v) end
end
save_all()
return out
