import os

import pytest

from tests.conformance.frameworks import FRAMEWORKS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(params=list(FRAMEWORKS))
def fw(request):
    """Each framework in turn; skipped where it is not installed."""
    framework = FRAMEWORKS[request.param]
    pytest.importorskip(framework.requires)
    return framework
