"""The device side: a simulated fleet of pump motors and the MQTT client that publishes its readings."""

import importlib.util
import sys
from pathlib import Path

# The device imports the telemetry schema from the Lambda layer's source. The project's venv has
# the layer on its path (a .pth file); any other interpreter (a device gateway, .venv-runtime)
# finds it next to this package.
if importlib.util.find_spec("motor_maintenance") is None:
    sys.path.append(str(Path(__file__).resolve().parents[1] / "layers" / "shared"))
