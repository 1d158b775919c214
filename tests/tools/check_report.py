"""Checks hplua reports with real consumers.

  check_report.py json REPORT.json SCHEMA.json     strict JSON (no NaN/Infinity, no repeated
                                                   keys, UTF-8), then the JSON Schema
  check_report.py junit REPORT.xml T F S [E]        parse with junitparser; expect totals (E: errors)
"""
import json
import sys


def no_constants(name):
    raise ValueError(f"not JSON: {name}")


def no_repeats(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"repeated key in an object: {sorted(keys)}")
    return dict(pairs)


def check_json(report, schema):
    import jsonschema
    with open(report, "rb") as f:
        text = f.read().decode("utf-8")  # strict: invalid UTF-8 raises
    data = json.loads(text, parse_constant=no_constants, object_pairs_hook=no_repeats)
    with open(schema, encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    cls(schema).validate(data)
    print("valid:", report)


def check_junit(report, tests, failures, skipped, errors=None):
    from junitparser import JUnitXml, Failure, Skipped, Error
    xml = JUnitXml.fromfile(report)
    t = f = s = e = 0
    for suite in xml:
        for case in suite:
            t += 1
            kinds = [type(r) for r in case.result]
            f += Failure in kinds
            s += Skipped in kinds
            e += Error in kinds
    got = (t, f, s)
    want = (int(tests), int(failures), int(skipped))
    if errors is not None:
        got, want = got + (e,), want + (int(errors),)
    if got != want:
        sys.exit(f"junit counts {got} != expected {want}")
    print("junit counts", got)


if __name__ == "__main__":
    if sys.argv[1] == "json":
        check_json(*sys.argv[2:4])
    else:
        check_junit(*sys.argv[2:7])
