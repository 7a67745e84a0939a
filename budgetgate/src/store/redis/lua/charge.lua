-- charge: KEYS[1] = the ledger's meta hash, KEYS[2] = the pause hash.
-- ARGV from 3: one charge (see read_charge).
-- Returns {admitted (1, 0, or P for paused), limit_index, spent_u, spent_n,
-- now, soft-limit bitmask}.
local c = read_charge(3, KEYS[1])
local L = open_charge(c)
-- The kill switch (shared by every ledger): everything, the namespace, or
-- this ledger.
local pause = redis.call('HMGET', KEYS[2], '*', c.pause_ns, c.pause_ledger)
local reply, err = charge_ledger(L, c.limits, c.au, c.an, c.id, c.hold, c.ttl, pause[1] or pause[2] or pause[3], true, c.mark)
L.save() -- scripts are not rolled back: keep the pruning even on an error
if err then return redis.error_reply(err) end
return reply
