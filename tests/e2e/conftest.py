"""The end-to-end fixtures (`stack`, `gateway`, `admin`, `patient`, `hospital`) live in
tests/conftest.py, shared with tests/security."""
