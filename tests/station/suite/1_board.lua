local hp = require "hplua"
hp.test("placeholder", function() end)
