"""The device side: a simulated fleet of pump motors and the MQTT client that publishes its readings."""
