import sys

from tools.ci_rehearsal.main import main

sys.exit(main(sys.argv[1:]))
