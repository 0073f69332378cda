"""`make fuzz`: hostile input for a long time, outside `make test`.

- `fuzz/targets.py`: coverage-guided fuzzing (atheris, i.e. libFuzzer) of every payload
  decoder, the timestamp and topic parsers, the validator and the whole prepare path of the
  pipeline, with one rule: nothing comes out but records/readings or a rejection with a reason.
- `fuzz/api.py`: schemathesis over the API's OpenAPI spec, against a real API process with a
  real SQL database, InfluxDB and Mosquitto: no answer may be a 5xx.

`python -m fuzz` runs both and reports the case counts (see `fuzz/__main__.py`).
"""
