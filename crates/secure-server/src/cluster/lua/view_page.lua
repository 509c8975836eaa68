-- KEYS: page, settled marker. ARGV: most views. {1, token} pending (this view counted),
-- {2} viewed too often, {3} settled, {4} unknown.
local token = redis.call('HGET', KEYS[1], 't')
if token then
  if tonumber(redis.call('HGET', KEYS[1], 'v')) >= tonumber(ARGV[1]) then return {2} end
  redis.call('HINCRBY', KEYS[1], 'v', 1)
  return {1, token}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {3} end
return {4}
