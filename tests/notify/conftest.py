from tests.mailboxes.conftest import make_mailbox  # noqa: F401  # the fetch tests' fixture
