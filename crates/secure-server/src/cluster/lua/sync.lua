-- KEYS: nodes, names, holds, node's names, node's holds, node's members, room.
-- ARGV: node, ttl ms, prefix, stream length, #names, #holds, names..., holds...,
-- (folded name, record)...
-- Registers the node and replaces what Redis says it holds by what it holds. Members Redis
-- still lists but the node no longer has (it restarted within its TTL, or the departures'
-- announcements were lost) are announced as gone. Returns {names taken by others, holds taken
-- by others}.
local now = now_ms()
local me = ARGV[1]
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), me)
local counts = {tonumber(ARGV[5]), tonumber(ARGV[6])}
local first_member = 7 + counts[1] + counts[2]
local present = {}
for k = first_member, #ARGV - 1, 2 do present[ARGV[k]] = true end
local old = redis.call('HGETALL', KEYS[6])
for k = 1, #old, 2 do
  if not present[old[k]] then
    local ok, member = pcall(cjson.decode, old[k + 1])
    if ok and type(member) == 'table' and type(member.bye) == 'string' then
      redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[4], '*', 'o', me, 'f', member.bye)
    end
  end
end
for _, n in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if redis.call('HGET', KEYS[2], n) == me then redis.call('HDEL', KEYS[2], n) end
end
for _, h in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  if redis.call('HGET', KEYS[3], h) == me then redis.call('HDEL', KEYS[3], h) end
end
redis.call('DEL', KEYS[4], KEYS[5], KEYS[6])
local lost = {{}, {}}
local i = 7
for which = 1, 2 do
  local index, mine = KEYS[1 + which], KEYS[3 + which]
  for _ = 1, counts[which] do
    local item = ARGV[i]
    i = i + 1
    local owner = redis.call('HGET', index, item)
    if owner and owner ~= me and alive(KEYS[1], owner, now) then
      table.insert(lost[which], item)
    else
      redis.call('HSET', index, item, me)
      redis.call('SADD', mine, item)
    end
  end
end
while i < #ARGV do
  redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return lost
