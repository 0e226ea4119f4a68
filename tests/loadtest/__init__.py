import os

# Importing locust (loadtest.shapes) must not monkey-patch the test process; the
# Locust runs of these tests are subprocesses, which get their own environment.
os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")
