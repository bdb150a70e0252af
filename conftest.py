# pytester drives the plugin in-process for the few tests that need it; most tests run
# the real plugin in a subprocess (tests/conftest.py: run_preflight).
pytest_plugins = ["pytester"]
