"""The device registry: the sensor catalog, devices, their credentials and calibration."""
