"""`python3 -m ssvm_operator.agent <action>`: same as the `ssvm-agent` console script."""
import sys

from ssvm_operator.agent.cli import main

sys.exit(main())
