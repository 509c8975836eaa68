-- KEYS: nodes, names, holds, room. ARGV: node, (unused), prefix, stream length. A clean
-- shutdown.
reap(ARGV[1], ARGV[3], ARGV[4])
redis.call('DEL', ARGV[3] .. 'reaped:' .. ARGV[1])
return 1
