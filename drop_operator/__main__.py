"""Allow ``python -m drop_operator``."""

from drop_operator.cli import main

raise SystemExit(main())
