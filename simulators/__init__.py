"""Field simulators: stand-ins for the city's sensors, publishing over MQTT like the hardware."""
