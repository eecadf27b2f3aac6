-- KV v2 reads: GET /v1/secret/data/bench/pre-<i>, i uniform over the pre-written key set.
-- usage: wrk ... -s kv-read.lua URL -- <nkeys>        (env VAULT_TOKEN = token)
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")

setup = c.setup
done = c.done
response = c.response
non2xx = 0

function init(args)
  nkeys = tonumber(args[1] or "1000")
  headers = { ["X-Vault-Token"] = os.getenv("VAULT_TOKEN") or "" }
  math.randomseed(1234 + thread_id)
  -- pre-generate the requests (cheap request())
  reqs = {}
  for i = 0, nkeys - 1 do
    reqs[i + 1] = wrk.format("GET", "/v1/secret/data/bench/pre-" .. i, headers, nil)
  end
end

function request()
  return reqs[math.random(1, nkeys)]
end
