-- KEYS: the held session's record, names, holds, nodes. ARGV: this node, prefix, stream length,
-- the resume token's key.
-- Takes a session another node holds for a resume: the record goes, its name keys (and token
-- hold) become this node's, its member record leaves its node, and its node is told to forget
-- it without a word. Returns the record, or false: none (unknown, used, expired), or one of its
-- names now held by a third live node.
local record = redis.call('GET', KEYS[1])
if not record then return false end
local held = cjson.decode(record)
local now = now_ms()
for _, key in ipairs(held.keys) do
  local owner = redis.call('HGET', KEYS[2], key)
  if owner and owner ~= held.node and owner ~= ARGV[1] and alive(KEYS[4], owner, now) then
    return false
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[2] .. 'held_orphans', ARGV[4])
redis.call('HDEL', ARGV[2] .. 'held_byes', ARGV[4])
local from = ARGV[2] .. 'node:' .. held.node
local to = ARGV[2] .. 'node:' .. ARGV[1]
for _, key in ipairs(held.keys) do
  redis.call('HSET', KEYS[2], key, ARGV[1])
  redis.call('SREM', from .. ':names', key)
  redis.call('SADD', to .. ':names', key)
end
if type(held.hold) == 'string' then
  redis.call('HSET', KEYS[3], held.hold, ARGV[1])
  redis.call('SREM', from .. ':holds', held.hold)
  redis.call('SADD', to .. ':holds', held.hold)
end
redis.call('HDEL', from .. ':members', held.keys[1])
local forget = cjson.encode({op = 'forget', node = held.node, id = held.id})
redis.call('XADD', ARGV[2] .. 'room', 'MAXLEN', '~', ARGV[3], '*', 'o', ARGV[1], 'c', forget)
return record
