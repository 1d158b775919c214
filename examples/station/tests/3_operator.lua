local hp = require "hplua"
hp.module { name = "Operator checks" }

hp.test("status LED", function()
  local ok = hp.dialog { id = "led", kind = "image", image = "board.svg", title = "Status LED",
    text = "Is the status LED (top left) lit green?" }
  hp.expect(ok).to_be(true)
end)

hp.test("enclosure", function()
  local variant = hp.dialog { id = "enclosure", kind = "choice", title = "Enclosure",
    text = "Which enclosure is fitted?", choices = { "grey", "black", "none" } }
  hp.set_message("enclosure: " .. variant)
end)

hp.test("label", function()
  hp.set_message("label printed for " .. (hp.run.serial or "?"))
end)
