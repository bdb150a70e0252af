# pytester drives the plugin in-process for the few tests that need it; most tests run
# the real plugin in a subprocess (tests/conftest.py: run_preflight).
pytest_plugins = ["pytester"]


def pytest_configure(config):
    # The real ms-swift runs (tests/test_stack_swift.py): `.ci/swift-env` runs them in
    # .venv-swift; elsewhere deselect them with `-m "not slow"` (they skip without swift).
    config.addinivalue_line(
        "markers", "slow: runs the real training stack (ms-swift); minutes, needs .venv-swift")
    config.addinivalue_line(
        "markers", "big_log: triages a generated 200 MB log (seconds); -m 'not big_log' skips it")
