"""Checks hplua reports with real consumers.

  check_report.py json REPORT.json SCHEMA.json     validate against the JSON Schema
  check_report.py junit REPORT.xml T F S            parse with junitparser; expect totals
"""
import json
import sys


def check_json(report, schema):
    import jsonschema
    with open(report, encoding="utf-8") as f:
        data = json.load(f)
    with open(schema, encoding="utf-8") as f:
        jsonschema.validate(data, json.load(f))
    print("valid:", report)


def check_junit(report, tests, failures, skipped):
    from junitparser import JUnitXml, Failure, Skipped
    xml = JUnitXml.fromfile(report)
    t = f = s = 0
    for suite in xml:
        for case in suite:
            t += 1
            kinds = [type(r) for r in case.result]
            f += Failure in kinds
            s += Skipped in kinds
    got = (t, f, s)
    want = (int(tests), int(failures), int(skipped))
    if got != want:
        sys.exit(f"junit counts {got} != expected {want}")
    print("junit counts", got)


if __name__ == "__main__":
    if sys.argv[1] == "json":
        check_json(*sys.argv[2:4])
    else:
        check_junit(*sys.argv[2:6])
