import sys

from tools.readme.main import main

sys.exit(main())
