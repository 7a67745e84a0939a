-- budgetgate: the first lines of every script. The script's time in µs:
-- the server's TIME (one clock for every client), or ARGV[1] in tests.
-- Each ledger then keeps its own time monotonic.
local NOW0
if ARGV[1] ~= '' then
  NOW0 = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  -- Arithmetic converts the two decimal strings once each (tonumber would
  -- convert each twice); the sum is exact (below 2^53).
  NOW0 = t[1] * 1000000 + t[2]
end
