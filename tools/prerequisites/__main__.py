import os
import sys

from tools.prerequisites.host import main

sys.exit(main(sys.argv[1:], os.environ))
