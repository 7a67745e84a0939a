-- Fast path of settle (before the shared code; see fast_charge.lua): a
-- reservation held in one lifetime window, on a ledger that counts in no
-- other, with no reservation to expire and no TTL to renew. Anything else
-- falls through to the general code, which gives the same result.
do
  local nl, wid, win = ARGV[4], ARGV[5], ARGV[6]
  if nl == '1' and wid == 'u' and win == '0' then
    local id = ARGV[7]
    local v = redis.call('HMGET', KEYS[1], 'last', 'minexp', 'tracks', 'ren', 'u', 'r:' .. id)
    local last, minexp, ren = tonumber(v[1]), tonumber(v[2]), tonumber(v[4])
    local now, now_s = NOW0, v[1]
    if last and last < now then now_s = string.format('%d', now) elseif last then now = last end
    if last and ren and now < ren and v[3] == 'u|0' and (minexp == nil or minexp > now) and v[6] then
      local u, n = string.match(v[6], '^(%-?%d+)|(%d+)|%d+|u|%d+$')
      local cu, cn, ru, rn = string.match(v[5] or '', '^(%-?%d+),(%d+),(%-?%d+),(%d+),$')
      if u and cu and u == ARGV[8] and n == ARGV[9] then
        local B = 1000000000
        cu, cn, ru, rn = tonumber(cu), tonumber(cn), tonumber(ru), tonumber(rn)
        ru, rn = ru - tonumber(u), rn - tonumber(n)
        if rn < 0 then ru, rn = ru - 1, rn + B end
        local code = '3'
        if ARGV[10] == 'c' then
          code = '1'
          cu, cn = cu + tonumber(ARGV[11]), cn + tonumber(ARGV[12])
          if cn >= B then cu, cn = cu + 1, cn - B end
        end
        redis.call('HDEL', KEYS[1], 'r:' .. id)
        redis.call('SET', KEYS[2], code, 'PX', ARGV[14])
        redis.call('HSET', KEYS[1], 'last', now_s, 'u', string.format('%d,%d,%d,%d,', cu, cn, ru, rn))
        do return { code, now_s } end
      end
    end
  end
end
