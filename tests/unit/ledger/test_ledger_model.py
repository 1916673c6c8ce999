"""The ledger of places, modelled (issue 22, item 5): the state machine of
tests/unit/ledger/ledger_support.py over the fakes of tests/unit/fakes.py. Its integration
twin, against real valkey and nx-27017, is tests/integration/ledger/test_ledger_model_real.py.
`LEDGER_EXAMPLES=2000 pytest tests/unit/ledger` looks harder, at random (about 20 ms an
example).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from tests.unit.ledger.ledger_support import LedgerModel

# The suite's run is derandomized (the same 100 examples every time, so `make test` never
# fails by the luck of the draw); `LEDGER_EXAMPLES=N` searches N fresh random examples.
SEARCH = os.environ.get("LEDGER_EXAMPLES")

TestLedgerModel = LedgerModel.TestCase
TestLedgerModel.settings = settings(
    max_examples=int(SEARCH or "100"),
    derandomize=SEARCH is None,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
