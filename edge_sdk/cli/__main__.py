import sys

from edge_sdk.cli.main import main

sys.exit(main())
