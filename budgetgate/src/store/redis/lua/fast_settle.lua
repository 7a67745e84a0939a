-- Fast path of settle (before the shared code; see fast_charge.lua): a
-- reservation held in one lifetime or rolling window that still counts it,
-- on a ledger that counts in no other, with no reservation to expire,
-- nothing to prune and no TTL to renew. Anything else falls through to the
-- general code, which gives the same result.
-- Formats: settle.lua's ARGV, HEAD, STATE and REC in common.lua.
do
  local P = ARGV[4]
  -- One limit: P is 8 numbers.
  if #P == 64 then
    local _, win, eu, en, au, an, commit = struct.unpack('<i8i8i8i8i8i8i8', P)
    local wid, id = ARGV[9], ARGV[5]
    local v = redis.call('HMGET', KEYS[1], 'h', 'tracks', wid, 'r:' .. id)
    if win >= 0 and v[1] and v[3] and v[4] and v[2] == wid then
      local last, minexp, exp, ren = struct.unpack('<i8i8i8i8', v[1])
      local now = NOW0
      if last > now then now = last end
      local u, n, ts = struct.unpack('<i8i8i8i8', v[4])
      local cu, cn, ru, rn, old = struct.unpack('<i8i8i8i8i8', v[3])
      -- The hold is the one the client reserved, counted in this window
      -- only and still counting (its entry has not left the window);
      -- nothing to renew, expire or prune.
      if u == eu and n == en and string.sub(v[4], 33) == wid and now < ren and (minexp < 0 or minexp > now)
          and (win == 0 or ((old < 0 or old >= now - win) and ts >= now - win)) then
        local ent = string.sub(KEYS[1], 1, -5) .. 'e:' .. wid
        if win == 0 or redis.call('ZREM', ent, id .. '|' .. ARGV[6] .. '|h') == 1 then
          local B = 1000000000
          ru, rn = ru - u, rn - n
          if rn < 0 then ru, rn = ru - 1, rn + B end
          local code = '3'
          if commit == 1 then
            code = '1'
            cu, cn = cu + au, cn + an
            if cn >= B then cu, cn = cu + 1, cn - B end
            -- The actual replaces the hold, at the reservation's time.
            if win > 0 then redis.call('ZADD', ent, string.format('%d', ts), id .. '|' .. ARGV[7] .. '|c') end
          end
          redis.call('HDEL', KEYS[1], 'r:' .. id)
          redis.call('SET', KEYS[2], code, 'PX', ARGV[8])
          redis.call('HSET', KEYS[1], 'h', struct.pack('<i8i8i8i8', now, minexp, exp, ren),
            wid, struct.pack('<i8i8i8i8i8', cu, cn, ru, rn, old))
          return { code, now }
        end
      end
    end
  end
end
