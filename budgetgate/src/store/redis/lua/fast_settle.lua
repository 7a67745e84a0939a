-- Fast path of settle (before the shared code; see fast_charge.lua): a
-- reservation held in one lifetime or rolling window that still counts it,
-- on a ledger that counts in no other, with no reservation to expire,
-- nothing to prune and no TTL to renew. Anything else falls through to the
-- general code, which gives the same result.
do
  local wid, win_s = ARGV[5], ARGV[6]
  local win = win_s == '0' and 0 or tonumber(win_s)
  if ARGV[4] == '1' and ((wid == 'u' and win == 0) or (string.sub(wid, 1, 1) == 'r' and win > 0)) then
    local id = ARGV[7]
    local v = redis.call('HMGET', KEYS[1], 'last', 'minexp', 'tracks', 'ren', 'exp', wid, 'r:' .. id)
    local last, minexp, ren = tonumber(v[1]), tonumber(v[2]), tonumber(v[4])
    local now, now_s = NOW0, v[1]
    if last and last < now then now_s = string.format('%d', now) elseif last then now = last end
    if last and ren and v[5] and now < ren and v[3] == wid .. '|' .. win_s and (minexp == nil or minexp > now) and v[7] then
      local u, n, ts_s, rwid = string.match(v[7], '^(%-?%d+)|(%d+)|(%d+)|([^|,]*)|%d+$')
      -- The window's state: STATE in common.lua.
      local cu, cn, ru, rn, old
      if v[6] then cu, cn, ru, rn, old = struct.unpack('<i8i8i8i8i8', v[6]) end
      local ts = tonumber(ts_s)
      -- The hold must still count (its entry has not left the window) and
      -- nothing may need pruning.
      if u and cu and rwid == wid and u == ARGV[8] and n == ARGV[9]
          and (win == 0 or ((old < 0 or old >= now - win) and ts >= now - win)) then
        local ent = string.sub(KEYS[1], 1, -5) .. 'e:' .. wid
        if win == 0 or redis.call('ZREM', ent, id .. '|' .. u .. '|' .. n .. '|h') == 1 then
          local B = 1000000000
          ru, rn = ru - tonumber(u), rn - tonumber(n)
          if rn < 0 then ru, rn = ru - 1, rn + B end
          local code = '3'
          if ARGV[10] == 'c' then
            code = '1'
            local au, an = tonumber(ARGV[11]), tonumber(ARGV[12])
            cu, cn = cu + au, cn + an
            if cn >= B then cu, cn = cu + 1, cn - B end
            -- The actual replaces the hold, at the reservation's time.
            if win > 0 then redis.call('ZADD', ent, ts_s, id .. '|' .. ARGV[11] .. '|' .. ARGV[12] .. '|c') end
          end
          redis.call('HDEL', KEYS[1], 'r:' .. id)
          redis.call('SET', KEYS[2], code, 'PX', ARGV[14])
          redis.call('HSET', KEYS[1], 'last', now_s, wid, struct.pack('<i8i8i8i8i8', cu, cn, ru, rn, old))
          do return { code, now_s } end
        end
      end
    end
  end
end
