-- Runs the busted specs inside hplua, so they reach the native modules:
--   hplua --exec tests/spec/run.lua tests/spec
require "busted.runner" { standalone = false }
