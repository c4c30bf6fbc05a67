-- Replay recorded OSS callbacks: a different signed callback on every request.
-- Arguments: the capture file and wrk's thread count. Each line of the file is one callback
-- as OSS sent it: path, content-type, authorization, x-oss-pub-key-url and the body in hex,
-- separated by tabs. wrk thread i sends callbacks i, i+n, i+2n, ... so no callback repeats
-- until the file wraps around.

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

local function unhex(text)
  return (text:gsub("..", function(pair) return string.char(tonumber(pair, 16)) end))
end

function init(args)
  requests = {}
  for line in io.lines(args[1]) do
    local path, content_type, authorization, key_url, body =
      line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
    if path then
      local headers = {
        ["Content-Type"] = content_type,
        ["authorization"] = authorization,
        ["x-oss-pub-key-url"] = key_url,
      }
      requests[#requests + 1] = wrk.format("POST", path, headers, unhex(body))
    end
  end
  step = tonumber(args[2])
  position = id
end

function request()
  local chosen = requests[position % #requests + 1]
  position = position + step
  return chosen
end
