-- KEYS: page, settled marker. ARGV: temporary token, ttl ms. 1 opened, 0 id in use.
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 't', ARGV[1], 'v', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
