import sys

from tools.audit.main import main

sys.exit(main())
