-- Numbers a message of a member of node ARGV[1] and adds it to the room stream and to the
-- history stream, atomically: the room's order, its numbers and its history agree.
-- KEYS: message counter, room, history, each node's last message number.
-- ARGV: node, member id, the node's number for the message (to write it once, should a batch
-- be written again after a broken connection), time (ms), name, text, room stream length,
-- messages kept, oldest time kept (ms).
local last = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
if tonumber(ARGV[3]) <= last then
  return 0
end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*',
  'o', ARGV[1], 'm', ARGV[2], 's', seq, 't', ARGV[4], 'u', ARGV[5], 'x', ARGV[6])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*',
  's', seq, 't', ARGV[4], 'u', ARGV[5], 'x', ARGV[6])
-- Entry ids are Redis's clock in ms: what is older than the oldest time kept goes.
redis.call('XTRIM', KEYS[3], 'MINID', '~', ARGV[9])
return seq
