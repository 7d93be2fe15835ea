import sys

from tools.signing.verify import main

sys.exit(main())
