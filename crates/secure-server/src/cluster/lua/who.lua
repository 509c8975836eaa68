-- KEYS: nodes. ARGV: prefix. {node, record, node, record, ...} for every live node's members.
local out = {}
for _, n in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now_ms(), '+inf')) do
  for _, record in ipairs(redis.call('HVALS', ARGV[1] .. 'node:' .. n .. ':members')) do
    table.insert(out, n)
    table.insert(out, record)
  end
end
return out
