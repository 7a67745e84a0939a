-- Fast path of charge (before the shared code, so a call that takes it
-- creates none of its functions): one lifetime or rolling window, on a
-- ledger that counts in no other, with no reservation to expire, nothing
-- to prune, no TTL to renew and no pause. Anything else falls through to
-- the general code, which gives the same result (this path only reads
-- before it decides; tests/redis_fast_paths.rs compares the two).
do
  local wid, win_s = ARGV[5], ARGV[6]
  local win = win_s == '0' and 0 or tonumber(win_s)
  if ARGV[4] == '1' and ((wid == 'u' and win == 0) or (string.sub(wid, 1, 1) == 'r' and win > 0)) then
    local id, hold = ARGV[13], ARGV[14] == '1'
    local v = redis.call('HMGET', KEYS[1], 'last', 'minexp', 'tracks', 'ren', 'exp', wid, 'r:' .. id)
    local last, minexp, ren = tonumber(v[1]), tonumber(v[2]), tonumber(v[4])
    local now, now_s = NOW0, v[1]
    if last and last < now then now_s = string.format('%d', now) elseif last then now = last end
    if last and ren and v[5] and now < ren and v[3] == wid .. '|' .. win_s and (minexp == nil or minexp > now)
        and not (hold and v[7]) then
      -- The window's state (STATE in common.lua: '<i8i8i8i8i8', old -1 for
      -- none); a new window takes the general code.
      local cu, cn, ru, rn, old
      if v[6] then cu, cn, ru, rn, old = struct.unpack('<i8i8i8i8i8', v[6]) end
      -- A rolling window whose oldest entry left must be pruned: general code.
      if cu and (win == 0 or old < 0 or old >= now - win) then
        local pause = redis.call('HMGET', KEYS[2], '*', ARGV[16], ARGV[17])
        if not (pause[1] or pause[2] or pause[3]) then
          local B = 1000000000
          local au, an = tonumber(ARGV[11]), tonumber(ARGV[12])
          -- spent = committed + reserved; room = max - spent (two limbs each)
          local su, sn = cu + ru, cn + rn
          if sn >= B then su, sn = su + 1, sn - B end
          local mu, mn = tonumber(ARGV[7]) - su, tonumber(ARGV[8]) - sn
          if mn < 0 then mu, mn = mu - 1, mn + B end
          local reply
          if au > mu or (au == mu and an > mn) then
            redis.call('HSET', KEYS[1], 'last', now_s)
            reply = { '0', '0', su, sn, now_s, '0' }
          else
            local tu, tn = su + au, sn + an
            if tn >= B then tu, tn = tu + 1, tn - B end
            local warn = '0'
            local wu, wn = -1, 0
            if ARGV[9] ~= '-1' then wu, wn = tonumber(ARGV[9]), tonumber(ARGV[10]) end
            if wu >= 0 and (su < wu or (su == wu and sn < wn)) and (tu > wu or (tu == wu and tn >= wn)) then
              warn = '1'
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
              redis.call('ZADD', ent, now_s, id .. '|' .. ARGV[11] .. '|' .. ARGV[12] .. (hold and '|h' or '|c'))
              if old < 0 then
                redis.call('PEXPIRE', ent, math.max(1, math.floor((tonumber(v[5]) - now) / 1000)))
                old = now
              end
            end
            local state = struct.pack('<i8i8i8i8i8', cu, cn, ru, rn, old)
            if not hold then
              redis.call('HSET', KEYS[1], 'last', now_s, wid, state)
            else
              local expires = now + tonumber(ARGV[15])
              local expires_s = string.format('%d', expires)
              local rec = ARGV[11] .. '|' .. ARGV[12] .. '|' .. now_s .. '|' .. wid .. '|' .. expires_s
              if minexp == nil or expires < minexp then
                redis.call('HSET', KEYS[1], 'last', now_s, wid, state, 'r:' .. id, rec,
                  'minexp', expires_s)
              else
                redis.call('HSET', KEYS[1], 'last', now_s, wid, state, 'r:' .. id, rec)
              end
            end
            reply = { '1', '0', su, sn, now_s, warn }
          end
          do return reply end
        end
      end
    end
  end
end
