-- KEYS: nodes, names, holds, room. ARGV: node, ttl ms, prefix, stream length, whether to
-- reap ('1'; '0' while this node has just come back from an outage the others may have shared,
-- such as a failover, so that they have the time to come back too).
-- Reaps every node past its deadline, then renews this one's. 0 if this node's own deadline
-- had passed (it must sync again), else 1.
local now = now_ms()
local was_alive = alive(KEYS[1], ARGV[1], now)
if ARGV[5] == '1' then
  for _, d in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)) do
    if d ~= ARGV[1] then reap(d, ARGV[3], ARGV[4]) end
  end
end
-- Sessions a stopped node left held for a resume on another node: past their window nobody
-- will resume them, so their departures are announced, once.
local orphans = ARGV[3] .. 'held_orphans'
for _, key in ipairs(redis.call('ZRANGEBYSCORE', orphans, '-inf', '(' .. now)) do
  redis.call('ZREM', orphans, key)
  local bye = redis.call('HGET', ARGV[3] .. 'held_byes', key)
  redis.call('HDEL', ARGV[3] .. 'held_byes', key)
  if bye then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'o', 'held', 'f', bye)
  end
end
if not was_alive then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
