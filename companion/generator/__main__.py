"""``python -m companion.generator``: see :mod:`companion.generator.cli`."""

from companion.generator.cli import main

raise SystemExit(main())
