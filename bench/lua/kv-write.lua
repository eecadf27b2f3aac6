-- KV v2 writes: POST /v1/secret/data/bench/<prefix>-<thread>-<n>, distinct key per request.
-- usage: wrk ... -s kv-write.lua URL -- <prefix>      (env VAULT_TOKEN = token)
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local c = dofile(dir .. "common.lua")

setup = c.setup
done = c.done
response = c.response
non2xx = 0
counter = 0

function init(args)
  prefix = args[1] or "w"
  token = os.getenv("VAULT_TOKEN") or ""
  headers = { ["X-Vault-Token"] = token, ["Content-Type"] = "application/json" }
  -- ~100-byte payload, same for every request
  body = '{"data":{"username":"bench-user","password":"' .. string.rep("x", 32) ..
         '","note":"labnode vs openbao"}}'
end

function request()
  counter = counter + 1
  local path = "/v1/secret/data/bench/" .. prefix .. "-" .. thread_id .. "-" .. counter
  return wrk.format("POST", path, headers, body)
end
