-- After a full rebuild: set the complete-records marker, unless Redis lost its data again
-- while the rebuild ran (then the rebuild token is gone and the next pass rebuilds again).
-- KEYS[1] the rebuild token key, KEYS[2] the complete-records marker; ARGV[1] the token
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], '1')
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
