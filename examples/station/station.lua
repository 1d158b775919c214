-- A complete demo station: `hplua serve examples/station`, then open
-- http://127.0.0.1:8642/ and scan (type) a serial such as DEMO-0001.
return {
  stand = { name = "Demo station 1", location = "Line 3, bench B" },
  suite_name = "Demo board (simulated DUT)",
  serial_pattern = "DEMO%-%d%d%d%d", -- serials ending in 9 fail the 3.3 V rail
  path = "tests",
  timeout = 60,
}
