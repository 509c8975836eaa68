-- KEYS: node's members, room. ARGV: node, case-folded name, `disconnect` frame, stream length.
-- Announces the departure only if the member's record was there: once, however many paths
-- (the session, the backlog, a sync) report it.
if redis.call('HDEL', KEYS[1], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'o', ARGV[1], 'f', ARGV[3])
end
return 1
