import sys

from bench.coldstart.main import main

sys.exit(main())
