-- KEYS: names, nodes. ARGV: prefix, folded name. {node, record} of that member, or nil (also
-- when its node is past its deadline: it cannot act on a kick).
local owner = redis.call('HGET', KEYS[1], ARGV[2])
if not owner or not alive(KEYS[2], owner, now_ms()) then return false end
local record = redis.call('HGET', ARGV[1] .. 'node:' .. owner .. ':members', ARGV[2])
if not record then return false end
return {owner, record}
