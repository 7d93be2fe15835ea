import sys

from bench.pr.main import main

sys.exit(main())
