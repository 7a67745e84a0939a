-- charge_many: a hierarchy, all or nothing, in one script.
-- KEYS = per ledger its meta hash (the kill switch is read beside the
-- script, in the same round trip).
-- ARGV 3 = number of ledgers; then per ledger one charge (see read_charge).
-- Returns {'A', then each ledger's 6-field reply} when every ledger fitted
-- and was recorded, or {'R', index (0-based), its 6-field reply} when one
-- was refused and nothing was recorded.
local n = tonumber(ARGV[3])
local i = 4
local ledgers = {}
for j = 1, n do
  local c
  c, i = read_charge(i, KEYS[j])
  c.L = open_charge(c)
  ledgers[j] = c
end
local function save_all()
  for _, c in ipairs(ledgers) do c.L.save() end
end
-- Every ledger must fit, and every id be new, before any is recorded.
for _, c in ipairs(ledgers) do
  local refused = refused_id(c.L, c.id, c.hold, c.mark)
  if refused then
    save_all()
    return redis.error_reply(refused)
  end
end
for j, c in ipairs(ledgers) do
  local reply = charge_ledger(c.L, c.limits, c.au, c.an, c.id, c.hold, c.ttl, false)
  if reply[1] ~= '1' then
    save_all()
    local out = { 'R', tostring(j - 1) }
    for _, v in ipairs(reply) do table.insert(out, v) end
    return out
  end
end
local out = { 'A' }
for _, c in ipairs(ledgers) do
  local reply, err = charge_ledger(c.L, c.limits, c.au, c.an, c.id, c.hold, c.ttl, true, c.mark)
  if err then
    save_all()
    return redis.error_reply(err)
  end
  for _, v in ipairs(reply) do table.insert(out, v) end
end
save_all()
return out
