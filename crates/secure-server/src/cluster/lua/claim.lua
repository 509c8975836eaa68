-- KEYS: nodes, index (names or holds), this node's set of them. ARGV: node, item.
-- 1 claimed, 0 a live node has it, -1 this node is not registered.
local now = now_ms()
if not alive(KEYS[1], ARGV[1], now) then return -1 end
local owner = redis.call('HGET', KEYS[2], ARGV[2])
if owner and owner ~= ARGV[1] and alive(KEYS[1], owner, now) then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
