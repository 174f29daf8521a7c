"""model/sagemaker_train.py and model/sagemaker_entry.py; `make test-sagemaker` runs them with the SageMaker SDK."""
