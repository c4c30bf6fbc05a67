-- POST with a different bearer token on every request, so every request is another user.
-- Arguments: the token file (one JWT a line) and wrk's thread count. wrk thread i sends
-- tokens i, i+n, i+2n, ... so no two requests share a token until the file wraps around.

local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do
    if #line > 0 then
      tokens[#tokens + 1] = line
    end
  end
  step = tonumber(args[2])
  position = id
end

function request()
  local token = tokens[position % #tokens + 1]
  position = position + step
  return wrk.format("POST", nil, { ["Authorization"] = "Bearer " .. token }, "")
end
