"""AWS adapters for the motor_maintenance ports: the only code in the layer that imports boto3."""
