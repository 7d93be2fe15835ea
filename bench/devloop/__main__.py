import sys

from bench.devloop.main import main

sys.exit(main())
