"""Predictive-maintenance domain for industrial motors: schema, features, detector, alerts.

Pure Python and Pydantic only: nothing here imports boto3 or reads the environment, so the
device simulator, the Lambda functions, the local stack and model training can all share it.
"""

__version__ = "0.1.0"
