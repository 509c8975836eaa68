-- Raises the message counter (KEYS[1]) to at least ARGV[1], the highest message number this
-- node has delivered, and returns what it was. Redis that lost its newest writes (a failover
-- to a replica that had not caught up) must not hand out a number already delivered again.
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
if seq < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return seq
