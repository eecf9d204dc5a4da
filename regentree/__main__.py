"""`python -m regentree` runs the command line."""

from regentree.cli import main

main()
