"""The failure-prediction model: training data, training, evaluation, the SageMaker artifact and contract."""

import importlib.util
import sys
from pathlib import Path

# Training computes features with the Lambda layer's own function. The project's venv has the
# layer on its path (a .pth file); any other interpreter finds it next to this package.
if importlib.util.find_spec("motor_maintenance") is None:
    sys.path.append(str(Path(__file__).resolve().parents[1] / "layers" / "shared"))
