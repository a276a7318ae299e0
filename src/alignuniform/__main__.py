import sys

from alignuniform.cli import main

sys.exit(main())
