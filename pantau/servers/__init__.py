"""The local stack: Mosquitto and InfluxDB as child processes, plus Pantau's own services.

`pantau up` and the test fixtures both use these classes, so the tests run the very services
`make run` runs.
"""
