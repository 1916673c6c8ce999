-- Undo one hit of a rate limit, only while its window lasts (a DECR of an expired counter
-- would leave a negative count with no window).
-- KEYS[1] the counter
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('DECR', KEYS[1])
end
return 0
