-- charge: KEYS[1] = the ledger's meta hash (the script touches only keys
-- under the ledger's hash tag; the kill switch is read beside it, in the
-- same round trip).
-- ARGV from 3: one charge (see read_charge).
-- Returns {admitted (1 or 0), limit_index, spent_u, spent_n, now,
-- soft-limit bitmask}.
local c = read_charge(3, KEYS[1])
local L = open_charge(c)
local reply, err = charge_ledger(L, c.limits, c.au, c.an, c.id, c.hold, c.ttl, true, c.mark)
L.save() -- scripts are not rolled back: keep the pruning even on an error
if err then return redis.error_reply(err) end
return reply
