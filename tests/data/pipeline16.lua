-- wrk script: send requests 16 deep on every connection (HTTP/1.1
-- pipelining). wrk counts each response, so errors and non-2xx answers show
-- in its usual report. The depth is the first script argument (default 16):
--   wrk -t1 -c32 -d2s -s tests/data/pipeline16.lua http://127.0.0.1:PORT/ -- 16

init = function(args)
   local depth = tonumber(args[1]) or 16
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil, "/")
   end
   req = table.concat(r)
end

request = function()
   return req
end
