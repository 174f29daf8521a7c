"""The failure model evaluated in plain Python inside InferenceFunction (InferenceMode embedded), without XGBoost."""
