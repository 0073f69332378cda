"""The composition room: the `pantau` command line and the `pantau up` launcher.

The only package that imports every other one (ingest, devices, people, api, simulators,
dashboards, and the `pantau` base below them all); nothing imports it.
"""
