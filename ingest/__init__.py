"""Pantau ingester: decode, validate, calibrate, detect anomalies, write, alert."""
