"""The SETI stack (quota keeper + edge) for the edge's own tests: sessions need real users."""

from tests.seti.conftest import stack  # noqa: F401  (fixture re-exported)
