-- Helpers every script shares. Times come from Redis (`TIME`), so that node clocks never
-- matter.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function alive(nodes, node, now)
  local deadline = redis.call('ZSCORE', nodes, node)
  return deadline and tonumber(deadline) >= now
end
-- Removes node d: what it claimed, its members (announcing each one's departure on the room
-- stream, as if d had written it: should d come back, it does not deliver them to its own
-- members, who are still there), its registration; leaves a tombstone so that d, should it
-- come back, knows.
-- KEYS: nodes, names, holds, room. prefix, stream length: the arguments.
local function reap(d, prefix, maxlen)
  redis.call('ZREM', KEYS[1], d)
  local base = prefix .. 'node:' .. d
  for _, n in ipairs(redis.call('SMEMBERS', base .. ':names')) do
    if redis.call('HGET', KEYS[2], n) == d then redis.call('HDEL', KEYS[2], n) end
  end
  for _, h in ipairs(redis.call('SMEMBERS', base .. ':holds')) do
    if redis.call('HGET', KEYS[3], h) == d then redis.call('HDEL', KEYS[3], h) end
  end
  for _, record in ipairs(redis.call('HVALS', base .. ':members')) do
    local ok, member = pcall(cjson.decode, record)
    if ok and type(member) == 'table' and type(member.bye) == 'string' then
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'o', d, 'f', member.bye)
    end
  end
  redis.call('DEL', base .. ':names', base .. ':holds', base .. ':members')
  redis.call('SET', prefix .. 'reaped:' .. d, '1', 'EX', 86400)
end
