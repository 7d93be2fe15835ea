import sys

from tools.coldstart.main import main

sys.exit(main())
