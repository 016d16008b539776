-- wrk script: POST one non-streaming chat completion.  MODEL and TOKEN come
-- from the environment so the same script drives the gateway and the
-- stand-in directly.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.body = '{"model":"' .. os.getenv("MODEL") ..
           '","messages":[{"role":"user","content":"one two three four five six seven eight"}]}'
