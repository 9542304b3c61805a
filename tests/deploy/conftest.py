"""The deploy/ static checks import their helpers from deploy_support.py beside this file
(pytest runs with --import-mode=importlib, which does not put test directories on sys.path)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
