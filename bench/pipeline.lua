-- wrk script: writes `depth` requests at a time (HTTP/1.1 pipelining), so
-- one wrk thread can load a server harder than it could one request per
-- round trip. Usage: wrk -s bench/pipeline.lua URL -- 8 (or PIPELINE_DEPTH=8)
init = function(args)
  local depth = tonumber(args[1]) or tonumber(os.getenv("PIPELINE_DEPTH") or "") or 8
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format()
  end
  req = table.concat(r)
end

request = function()
  return req
end
