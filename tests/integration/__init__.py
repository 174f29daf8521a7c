"""Tests against real services on loopback: an MQTT broker with mutual TLS."""
