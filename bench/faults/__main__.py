"""`python -m bench.faults`: what bin/faults runs."""

from bench.faults._cli import main

raise SystemExit(main())
