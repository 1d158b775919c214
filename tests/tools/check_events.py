"""Checks an hplua events file (--events, NDJSON) against tests/events.schema.json.

  check_events.py EVENTS.ndjson SCHEMA.json [TYPE ...]

Every line must be one JSON object valid against the schema; seq must count 1, 2, 3...
with one run_id; the last event must be run_finished; each TYPE named must occur.
Prints the types seen.
"""
import json
import sys

import jsonschema


def main(path, schema_path, *want):
    with open(schema_path, encoding="utf-8") as f:
        validator = jsonschema.Draft7Validator(json.load(f))
    seen, run_ids, last = {}, set(), None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            assert line.endswith("\n"), f"line {n} is not terminated"
            ev = json.loads(line)
            errors = sorted(validator.iter_errors(ev), key=str)
            if errors:
                raise SystemExit(f"{path}:{n}: {ev.get('type')}: {errors[0].message} at {list(errors[0].path)}")
            assert ev["seq"] == n, f"line {n}: seq {ev['seq']}"
            run_ids.add(ev["run_id"])
            seen[ev["type"]] = seen.get(ev["type"], 0) + 1
            last = ev
    assert len(run_ids) == 1, f"several run ids: {run_ids}"
    assert last and last["type"] == "run_finished", "the stream does not end with run_finished"
    missing = [t for t in want if t not in seen]
    assert not missing, f"types never seen: {missing}"
    print("valid:", path, " ".join(f"{k}={v}" for k, v in sorted(seen.items())))


if __name__ == "__main__":
    main(*sys.argv[1:])
