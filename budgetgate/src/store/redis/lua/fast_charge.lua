-- Fast path of charge (before the shared code, so a call that takes it
-- creates none of its functions): one lifetime window on a ledger that
-- counts in no other, with no reservation to expire, no TTL to renew and
-- no pause. Anything else falls through to the general code, which gives
-- the same result; this path only skips work that has nothing to do.
do
  local nl, wid, win = ARGV[4], ARGV[5], ARGV[6]
  if nl == '1' and wid == 'u' and win == '0' then
    local id, hold = ARGV[13], ARGV[14] == '1'
    local v = redis.call('HMGET', KEYS[1], 'last', 'minexp', 'tracks', 'ren', 'u', 'r:' .. id)
    local last, minexp, ren = tonumber(v[1]), tonumber(v[2]), tonumber(v[4])
    local now, now_s = NOW0, v[1]
    if last and last < now then now_s = string.format('%d', now) elseif last then now = last end
    if last and ren and now < ren and v[3] == 'u|0' and (minexp == nil or minexp > now)
        and not (hold and v[6]) then
      local pause = redis.call('HMGET', KEYS[2], '*', ARGV[16], ARGV[17])
      if not (pause[1] or pause[2] or pause[3]) then
        local B = 1000000000
        local cu, cn, ru, rn = string.match(v[5] or '0,0,0,0,', '^(%-?%d+),(%d+),(%-?%d+),(%d+),$')
        cu, cn, ru, rn = tonumber(cu), tonumber(cn), tonumber(ru), tonumber(rn)
        if cu then
          local au, an = tonumber(ARGV[11]), tonumber(ARGV[12])
          -- spent = committed + reserved; room = max - spent (two limbs each)
          local su, sn = cu + ru, cn + rn
          if sn >= B then su, sn = su + 1, sn - B end
          local ru2, rn2 = tonumber(ARGV[7]) - su, tonumber(ARGV[8]) - sn
          if rn2 < 0 then ru2, rn2 = ru2 - 1, rn2 + B end
          local fits = au < ru2 or (au == ru2 and an <= rn2)
          local reply
          if not fits then
            redis.call('HSET', KEYS[1], 'last', now_s)
            reply = { '0', '0', string.format('%d', su), string.format('%d', sn), now_s, '0' }
          else
            local tu, tn = su + au, sn + an
            if tn >= B then tu, tn = tu + 1, tn - B end
            local wu, wn = tonumber(ARGV[9]), tonumber(ARGV[10])
            local warn = '0'
            if wu >= 0 and (su < wu or (su == wu and sn < wn)) and (tu > wu or (tu == wu and tn >= wn)) then
              warn = '1'
            end
            if hold then
              ru, rn = ru + au, rn + an
              if rn >= B then ru, rn = ru + 1, rn - B end
              local expires = now + tonumber(ARGV[15])
              local rec = string.format('%d|%d|%s|u|%d', au, an, now_s, expires)
              if minexp == nil or expires < minexp then
                redis.call('HSET', KEYS[1], 'last', now_s, 'u', string.format('%d,%d,%d,%d,', cu, cn, ru, rn),
                  'r:' .. id, rec, 'minexp', string.format('%d', expires))
              else
                redis.call('HSET', KEYS[1], 'last', now_s, 'u', string.format('%d,%d,%d,%d,', cu, cn, ru, rn),
                  'r:' .. id, rec)
              end
            else
              cu, cn = cu + au, cn + an
              if cn >= B then cu, cn = cu + 1, cn - B end
              redis.call('HSET', KEYS[1], 'last', now_s, 'u', string.format('%d,%d,%d,%d,', cu, cn, ru, rn))
            end
            reply = { '1', '0', string.format('%d', su), string.format('%d', sn), now_s, warn }
          end
          do return reply end
        end
      end
    end
  end
end
