"""`python -m wbsrun`."""

from wbsrun.cli import main

main()
