"""python -m ai_storage_orchestrator.cli"""

import sys

from ai_storage_orchestrator.cli import main

sys.exit(main())
