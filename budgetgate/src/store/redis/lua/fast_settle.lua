-- Fast path of settle (before the shared code; see fast_charge.lua): a
-- reservation held in one lifetime or rolling window that still counts it,
-- on a ledger that counts in no other, with no reservation to expire,
-- nothing to prune and no TTL to renew. Anything else falls through to the
-- general code, which gives the same result.
-- ARGV: settle.lua's; formats: the one-window 'h' (HEAD, STATE, wid) and
-- REC in common.lua.
do
  local P = ARGV[3]
  -- One limit: P is 8 numbers.
  if #P == 64 then
    local _, win, eu, en, au, an, commit = struct.unpack('<i8i8i8i8i8i8i8', P)
    local wid, id = ARGV[8], ARGV[4]
    local rid = 'r:' .. id
    local v = redis.call('HMGET', KEYS[1], 'h', rid)
    local h, rec = v[1], v[2]
    if win >= 0 and h and rec and #h > 72 and string.sub(h, 73) == wid then
      local last, minexp, exp, ren, cu, cn, ru, rn, old = struct.unpack('<i8i8i8i8i8i8i8i8i8', h)
      local now = NOW0
      if last > now then now = last end
      local u, n, ts = struct.unpack('<i8i8i8', rec)
      -- The hold is the one the client reserved, counted in this window
      -- only and still counting (its entry has not left the window);
      -- nothing to renew, expire or prune.
      if u == eu and n == en and string.sub(rec, 33) == wid and now < ren and (minexp < 0 or minexp > now)
          and (win == 0 or ((old < 0 or old >= now - win) and ts >= now - win)) then
        local ent = string.sub(KEYS[1], 1, -5) .. 'e:' .. wid
        if win == 0 or redis.call('ZREM', ent, id .. '|' .. ARGV[5] .. '|h') == 1 then
          local B = 1000000000
          ru, rn = ru - u, rn - n
          if rn < 0 then ru, rn = ru - 1, rn + B end
          local code = '3'
          if commit == 1 then
            code = '1'
            cu, cn = cu + au, cn + an
            if cn >= B then cu, cn = cu + 1, cn - B end
            -- The actual replaces the hold, at the reservation's time.
            if win > 0 then redis.call('ZADD', ent, string.format('%d', ts), id .. '|' .. ARGV[6] .. '|c') end
          end
          redis.call('HDEL', KEYS[1], rid)
          redis.call('SET', KEYS[2], code, 'PX', ARGV[7])
          redis.call('HSET', KEYS[1], 'h', struct.pack('<i8i8i8i8i8i8i8i8i8', now, minexp, exp, ren, cu, cn, ru, rn, old) .. wid)
          return { code, now }
        end
      end
    end
  end
end
