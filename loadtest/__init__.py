"""Load tests: Locust users and shapes, the scale-out recorder (`shoal watch`) and its
picture (`shoal report`), and `make loadtest` (`python -m loadtest.spike`)."""
