import pytest

# The contract lives in the package (so every backend's tests can reuse it);
# have pytest rewrite its asserts so failures show the compared values.
pytest.register_assert_rewrite("mailbag.store.contract")
