-- charge: KEYS 1-3 = the ledger's meta, res, resx; KEYS[4] = the pause
-- hash. ARGV 3 = BASE, 4 = number of limits, 5.. = per limit (wid,
-- window_us, max_u, max_n, warn_u, warn_n), then amount_u, amount_n, id,
-- hold (0/1), ttl_us, and the namespace's and the ledger's pause fields.
-- Returns {admitted (1, 0, or P for paused), limit_index, spent_u, spent_n,
-- now, soft-limit bitmask}.
local L = open_ledger(KEYS[1], KEYS[2], KEYS[3], ARGV[3], NOW0)
local limits, i = read_limits(L, tonumber(ARGV[4]), 5)
local au, an, id, hold, ttl = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3] == '1', tonumber(ARGV[i + 4])
-- The kill switch (shared by every ledger): everything, the namespace, or
-- this ledger.
local pause = redis.call('HMGET', KEYS[4], '*', ARGV[i + 5], ARGV[i + 6])
local reply, err = charge_ledger(L, limits, au, an, id, hold, ttl, pause[1] or pause[2] or pause[3], true)
L.save() -- scripts are not rolled back: keep the pruning even on an error
if err then return redis.error_reply(err) end
return reply
