-- Fast path of charge (before the shared code, so a call that takes it
-- creates none of its functions): one lifetime or rolling window, on a
-- ledger that counts in no other, with no reservation to expire, nothing
-- to prune and no TTL to renew. Anything else falls through to
-- the general code, which gives the same result (this path only reads
-- before it decides; tests/redis_fast_paths.rs compares the two).
-- ARGV: charge.lua's; formats: read_charge, and the one-window 'h' (HEAD,
-- STATE, wid) in common.lua.
do
  local P = ARGV[3]
  -- One limit: P is 10 numbers.
  if #P == 80 then
    local _, win, mu, mn, wu, wn, au, an, hold, ttl = struct.unpack('<i8i8i8i8i8i8i8i8i8i8', P)
    local wid, id = ARGV[6], ARGV[5]
    -- 1: a hold; 2: a fixed cost remembered under its id (ttl: the
    -- settled retention); 0: a fixed cost.
    local mark = hold == 2
    hold = hold == 1
    local rid = 'r:' .. id
    local v = redis.call('HMGET', KEYS[1], 'h', rid)
    local h = v[1]
    -- The ledger counts in this one window only; a hold's id is new (and
    -- was not cancelled before it arrived: see settle.lua).
    local done = string.sub(KEYS[1], 1, -5) .. 'd:' .. id
    if hold and redis.call('EXISTS', done) == 1 then
      return redis.error_reply('reservation id ' .. id .. ' was cancelled')
    end
    if win >= 0 and h and #h > 72 and string.sub(h, 73) == wid and not (hold and v[2]) then
      local last, minexp, exp, ren, cu, cn, ru, rn, old = struct.unpack('<i8i8i8i8i8i8i8i8i8', h)
      local now = NOW0
      if last > now then now = last end
      -- No TTL to renew, no reservation to expire, and (rolling) nothing
      -- that left the window.
      if now < ren and (minexp < 0 or minexp > now) and (win == 0 or old < 0 or old >= now - win) then
        do
          local B = 1000000000
          -- spent = committed + reserved; room = max - spent (two limbs each)
          local su, sn = cu + ru, cn + rn
          if sn >= B then su, sn = su + 1, sn - B end
          local mu, mn = mu - su, mn - sn
          if mn < 0 then mu, mn = mu - 1, mn + B end
          if au > mu or (au == mu and an > mn) then
            redis.call('HSET', KEYS[1], 'h', struct.pack('<i8i8i8i8i8i8i8i8i8', now, minexp, exp, ren, cu, cn, ru, rn, old) .. wid)
            return { '0', '0', su, sn, now, '0' }
          end
          -- A fixed cost remembered under its id: common.lua's claim_fixed
          -- (one SET NX checks and writes the tombstone), for this window.
          if mark and not redis.call('SET', done, '6|' .. string.format('%d', now) .. '|' .. wid,
              'NX', 'PX', string.format('%d', math.max(1, math.floor(ttl / 1000)))) then
            return redis.error_reply('reservation id ' .. id .. ' was cancelled')
          end
          local tu, tn = su + au, sn + an
          if tn >= B then tu, tn = tu + 1, tn - B end
          local warn = '0'
          if wu >= 0 and (su < wu or (su == wu and sn < wn)) and (tu > wu or (tu == wu and tn >= wn)) then
            -- Once per window: common.lua's first_warning, for these windows.
            local mark = string.sub(KEYS[1], 1, -5) .. 'w:' .. wid .. ':' .. string.format('%d.%d', wu, wn)
            if win > 0 then
              local prev = redis.call('GET', mark)
              if not (prev and now - tonumber(prev) < win) then
                redis.call('SET', mark, string.format('%d', now), 'PX', string.format('%d', math.max(1, math.floor(win / 1000))))
                warn = '1'
              end
            elseif redis.call('SET', mark, '1', 'NX', 'PX', string.format('%d', math.max(1, tonumber(string.match(ARGV[2], '^(%d+)'))))) then
              warn = '1'
            end
          end
          if hold then
            ru, rn = ru + au, rn + an
            if rn >= B then ru, rn = ru + 1, rn - B end
          else
            cu, cn = cu + au, cn + an
            if cn >= B then cu, cn = cu + 1, cn - B end
          end
          if win > 0 then
            -- The entry that leaves the window later; a first entry creates
            -- the key, which expires with the ledger's other keys.
            local ent = string.sub(KEYS[1], 1, -5) .. 'e:' .. wid
            redis.call('ZADD', ent, string.format('%d', now), id .. '|' .. ARGV[4] .. (hold and '|h' or '|c'))
            if old < 0 then
              redis.call('PEXPIRE', ent, math.max(1, math.floor((exp - now) / 1000)))
              old = now
            end
          end
          if not hold then
            redis.call('HSET', KEYS[1], 'h', struct.pack('<i8i8i8i8i8i8i8i8i8', now, minexp, exp, ren, cu, cn, ru, rn, old) .. wid)
          else
            local expires = now + ttl
            if minexp < 0 or expires < minexp then minexp = expires end
            redis.call('HSET', KEYS[1], 'h', struct.pack('<i8i8i8i8i8i8i8i8i8', now, minexp, exp, ren, cu, cn, ru, rn, old) .. wid,
              rid, struct.pack('<i8i8i8i8', au, an, now, expires) .. wid)
          end
          return { '1', '0', su, sn, now, warn }
        end
      end
    end
  end
end
