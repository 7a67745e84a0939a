-- charge: KEYS[1] = the ledger's meta hash, KEYS[2] = the pause hash.
-- ARGV 3 = BASE, 4 = number of limits, 5.. = per limit (wid, window_us,
-- max_u, max_n, warn_u, warn_n), then amount_u, amount_n, id, hold (0/1),
-- ttl_us, and the namespace's and the ledger's pause fields.
-- Returns {admitted (1, 0, or P for paused), limit_index, spent_u, spent_n,
-- now, soft-limit bitmask}.
local nl = tonumber(ARGV[4])
local j = 5 + nl * 6
local au, an, id, hold, ttl = tonumber(ARGV[j]), tonumber(ARGV[j + 1]), ARGV[j + 2], ARGV[j + 3] == '1', tonumber(ARGV[j + 4])
-- A hold reads its id's field too: ids must be new.
local L = open_ledger(ARGV[3], NOW0, wanted(nl, 5, 6), hold and id or nil)
local limits = read_limits(L, nl, 5)
-- The kill switch (shared by every ledger): everything, the namespace, or
-- this ledger.
local pause = redis.call('HMGET', KEYS[2], '*', ARGV[j + 5], ARGV[j + 6])
local reply, err = charge_ledger(L, limits, au, an, id, hold, ttl, pause[1] or pause[2] or pause[3], true)
L.save() -- scripts are not rolled back: keep the pruning even on an error
if err then return redis.error_reply(err) end
return reply
