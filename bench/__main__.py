"""`python -m bench [--quick] [--db sqlite|postgresql|both]`: run the benchmarks, print a table."""

from bench.run import main

raise SystemExit(main())
