--  post.lua - wrk script that POSTs the same chat request on every call.
--
--  Aimed at cg_standin directly, or at the gateway in front of it, so the
--  two figures compare like with like:
--
--      wrk -t2 -c64 -d5s -s tests/standin/post.lua http://127.0.0.1:PORT
--
--  Environment (all optional):
--      API=openai|anthropic   request format (default openai)
--      MODEL=name             model, i.e. the stand-in knob (default
--                             gpt-4o-mini / claude-3-5-haiku)
--      STREAM=1               ask for an SSE stream
--      KEY=secret             Bearer token (openai) or x-api-key (anthropic)
--      URL_PATH=/path         override the request path (e.g. a gateway
--                             route); default /v1/chat/completions or
--                             /v1/messages
--  wrk reports non-2xx answers as "Non-2xx or 3xx responses".

local api = os.getenv ("API") or "openai"
local model = os.getenv ("MODEL")
local stream = os.getenv ("STREAM") == "1" and "true" or "false"
local key = os.getenv ("KEY")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

if api == "anthropic" then
    wrk.path = "/v1/messages"
    wrk.headers["anthropic-version"] = "2023-06-01"
    if key then
        wrk.headers["x-api-key"] = key
    end
    wrk.body = string.format (
        '{"model":"%s","max_tokens":64,"stream":%s,'
            .. '"messages":[{"role":"user","content":"Say hello"}]}',
        model or "claude-3-5-haiku", stream)
else
    wrk.path = "/v1/chat/completions"
    if key then
        wrk.headers["Authorization"] = "Bearer " .. key
    end
    wrk.body = string.format (
        '{"model":"%s","stream":%s,'
            .. '"messages":[{"role":"user","content":"Say hello"}]}',
        model or "gpt-4o-mini", stream)
end

wrk.path = os.getenv ("URL_PATH") or wrk.path
